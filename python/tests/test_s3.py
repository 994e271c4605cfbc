"""Object storage end to end: every format read from a real S3-compatible server on 127.0.0.1
(s3s-fs, checking signatures) through a proxy that injects faults, compared value for value
with the local read; typed errors for objects that keep failing, missing buckets, wrong
credentials and missing keys; paginated listing; ranged Parquet reads."""

from __future__ import annotations

import collections
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zenith
from conftest import make_table
from s3_fault_proxy import FaultProxy, Request
from s3_server import S3Server
from zenith import _zenith

BUCKET = "data"
# Fast retries so that fault tests spend milliseconds, not the production backoff.
RETRY = {"retry_init_backoff": "5ms", "retry_max_backoff": "50ms", "max_retries": "6"}
FORMATS = {"parquet": "parquet", "csv": "data.csv", "arrow": "data.arrow", "arrows": "data.arrows"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, datasets: dict[str, Path]) -> Iterator[S3Server]:
    """The server, with the shared datasets copied into bucket ``data``."""
    root = tmp_path_factory.mktemp("s3root")
    bucket = root / BUCKET
    shutil.copytree(datasets["parquet"], bucket / "parquet")
    for fmt in ("csv", "arrow", "arrows"):
        shutil.copy(datasets[fmt], bucket / FORMATS[fmt])
    server = S3Server.start(root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy.start(s3.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def faults(proxy: FaultProxy) -> Iterator[FaultProxy]:
    proxy.clear()
    yield proxy
    proxy.clear()


def via_proxy(s3: S3Server, proxy: FaultProxy, **extra: str) -> dict[str, str]:
    return s3.options(proxy.endpoint, **{**RETRY, **extra})


def url(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


def is_data_get(r: Request) -> bool:
    """A ranged GET of data (not the footer's suffix range, not a listing)."""
    rng = r.range or ""
    return r.method == "GET" and rng.startswith("bytes=") and not rng.startswith("bytes=-")


def arm_every_fault(p: FaultProxy) -> list:
    """One of each fault on the first data requests after it is armed."""
    return [
        p.fail("503", is_data_get, times=2),
        p.fail("drop", is_data_get, times=1),
        p.fail("cut", is_data_get, times=1),
        p.fail("delay", is_data_get, times=1, delay_s=0.2),
        p.fail("503", lambda r: r.method == "HEAD", times=1),
    ]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_under_faults_equals_local(
    s3: S3Server, faults: FaultProxy, datasets: dict[str, Path], fmt: str
) -> None:
    rules = arm_every_fault(faults)
    remote = zenith.load(url(FORMATS[fmt]), storage_options=via_proxy(s3, faults))
    local = zenith.load(datasets[fmt], cache=False)
    assert remote.num_rows == local.num_rows > 0
    assert remote.equals(local)
    if fmt == "csv":
        assert remote.equals(pacsv.read_csv(datasets[fmt]))
    hit = {(r.action, r.times): r.hits for r in rules}
    assert hit[("503", 2)] == 2 and hit[("drop", 1)] == 1, hit
    assert hit[("cut", 1)] == 1 and hit[("delay", 1)] == 1, hit


def test_parquet_reads_footer_then_only_projected_chunks(
    s3: S3Server, faults: FaultProxy, datasets: dict[str, Path]
) -> None:
    files = sorted(datasets["parquet"].glob("*.parquet"))
    before = _zenith.storage_stats()
    table = zenith.load(url("parquet/"), columns=["f2", "id"], storage_options=via_proxy(s3, faults))
    fetched = _zenith.storage_stats()["bytes"] - before["bytes"]
    assert table.equals(zenith.load(datasets["parquet"], columns=["f2", "id"], cache=False))
    gets = faults.requests(lambda r: r.method == "GET" and "/parquet/part-" in r.path)
    # Every GET is ranged: one suffix range per footer, then column chunks.
    assert all(r.range for r in gets), [r.path for r in gets if not r.range]
    footers = [r for r in gets if r.range and r.range.startswith("bytes=-")]
    assert len(footers) == len(files)
    wanted = 0
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for rg in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                col = meta.row_group(rg).column(c)
                if col.path_in_schema in ("f2", "id"):
                    wanted += col.total_compressed_size
    footer_bytes = sum(min(f.stat().st_size, 64 << 10) for f in files)
    data_bytes = fetched - footer_bytes
    assert wanted <= data_bytes <= 1.1 * wanted, (data_bytes, wanted)
    # id and f2 are not adjacent, and the columns between would add more than a tenth: two
    # requests per row group.
    row_groups = sum(pq.ParquetFile(f).metadata.num_row_groups for f in files)
    assert len(gets) - len(footers) == 2 * row_groups
    # Adjacent columns travel together: one request per row group.
    faults.clear()
    zenith.load(url("parquet/"), columns=["f1", "f2"], storage_options=via_proxy(s3, faults))
    data = faults.requests(lambda r: r.method == "GET" and "/parquet/part-" in r.path)
    assert len(data) - len(files) == row_groups


def test_dataloader_epoch_from_s3_equals_local_multiset(
    s3: S3Server, faults: FaultProxy, datasets: dict[str, Path], table: pa.Table
) -> None:
    arm_every_fault(faults)
    loader = zenith.DataLoader(
        url("parquet"), batch_size=64, shuffle=True, seed=3, columns=["id", "label"],
        storage_options=via_proxy(s3, faults),
    )
    ids = np.concatenate([b["id"] for b in loader])
    local = zenith.DataLoader(datasets["parquet"], batch_size=64, shuffle=True, seed=3,
                              columns=["id", "label"])
    local_ids = np.concatenate([b["id"] for b in local])
    assert collections.Counter(ids.tolist()) == collections.Counter(local_ids.tolist())
    assert sorted(ids.tolist()) == list(range(table.num_rows))
    # Same seed, same files: the same order, whatever the storage.
    assert ids.tolist() == local_ids.tolist()


def test_torch_dataloader_from_s3(s3: S3Server, faults: FaultProxy, table: pa.Table) -> None:
    torch = pytest.importorskip("torch")
    from zenith.torch import DataLoader

    faults.fail("503", is_data_get, times=3)
    dl = DataLoader(url("data.arrow"), batch_size=100, shuffle=True, seed=1,
                    columns={"x": ["f0", "f1"], "y": "id"},
                    storage_options=via_proxy(s3, faults))
    xs, ys = [], []
    for batch in dl:
        assert isinstance(batch["x"], torch.Tensor) and batch["x"].shape[1] == 2
        xs.append(batch["x"])
        ys.append(batch["y"])
    y = torch.cat(ys).numpy()
    assert sorted(y.tolist()) == list(range(table.num_rows))
    x = torch.cat(xs).numpy()
    f0 = table.column("f0").to_numpy()
    np.testing.assert_array_equal(x[:, 0], f0[y])


def test_stalled_body_times_out_and_is_retried(
    s3: S3Server, faults: FaultProxy, datasets: dict[str, Path]
) -> None:
    rule = faults.fail("stall", is_data_get, times=1, stall_s=5.0)
    remote = zenith.load(url("data.csv"), storage_options=via_proxy(s3, faults, timeout="1s"))
    assert rule.hits == 1
    assert remote.equals(zenith.load(datasets["csv"], cache=False))


def test_permanently_failing_object_raises_storage_error(s3: S3Server, faults: FaultProxy) -> None:
    faults.fail("503", lambda r: "part-002" in r.path and is_data_get(r), times=None)
    opts = via_proxy(s3, faults, max_retries="2")
    with pytest.raises(zenith.StorageError) as info:
        zenith.load(url("parquet"), storage_options=opts)
    message = str(info.value)
    assert "s3://data/parquet/part-002.parquet bytes " in message, message
    assert "503" in message or "Slow" in message, message


def test_object_replaced_during_an_epoch_raises_instead_of_mixing_versions(
    s3: S3Server, faults: FaultProxy, table: pa.Table
) -> None:
    """Every read of an object carries the ETag it was listed with: a file rewritten while the
    epoch runs fails the read that reaches it, naming it, rather than mixing two versions."""
    prefix = s3.root / BUCKET / "changing"
    write_dir = lambda t: [pq.write_table(t.slice(i * 1000, 1000), prefix / f"part-{i}.parquet",  # noqa: E731
                                          row_group_size=250) for i in range(3)]
    prefix.mkdir()
    try:
        write_dir(table.slice(0, 3000))
        loader = zenith.DataLoader(url("changing"), batch_size=250, shuffle=False, columns=["id"],
                                   num_workers=1, prefetch=1, shuffle_window=250,
                                   storage_options=via_proxy(s3, faults))
        it = iter(loader)
        assert next(it)["id"].tolist() == list(range(250))
        # The last file, not read yet, is rewritten (longer, with other values).
        pq.write_table(table.slice(2000, 1500), prefix / "part-2.parquet", row_group_size=250)
        with pytest.raises(zenith.StorageError) as info:
            for _ in it:
                pass
        message = str(info.value)
        assert "s3://data/changing/part-2.parquet" in message, message
        assert "changed since it was listed" in message, message
        assert any(r.status == 412 for r in faults.requests(lambda r: "part-2" in r.path))
    finally:
        shutil.rmtree(prefix)


def test_failing_unit_is_skipped_and_counted(
    s3: S3Server, faults: FaultProxy, table: pa.Table
) -> None:
    faults.fail("503", lambda r: "part-001" in r.path and is_data_get(r), times=None)
    loader = zenith.DataLoader(url("parquet"), batch_size=100, shuffle=False, columns=["id"],
                               on_error="skip",
                               storage_options=via_proxy(s3, faults, max_retries="1"))
    ids = np.concatenate([b["id"] for b in loader])
    part = table.num_rows // 4
    # The second file's rows are missing, each exactly once; nothing else is lost or repeated.
    assert ids.tolist() == list(range(part)) + list(range(2 * part, table.num_rows))
    stats = loader.stats()
    assert stats["skipped_rows"] == part
    assert stats["skipped_units"] == len(pq.ParquetFile(
        s3.root / BUCKET / "parquet" / "part-001.parquet").metadata.to_dict()["row_groups"])
    assert all("part-001.parquet" in s for s in stats["skipped"])


def test_missing_bucket(s3: S3Server) -> None:
    with pytest.raises(zenith.StorageError, match=r"nosuchbucket|NoSuchBucket|not found"):
        zenith.load("s3://nosuchbucket/x.parquet", storage_options=s3.options(**RETRY))


def test_wrong_credentials(s3: S3Server) -> None:
    opts = s3.options(aws_secret_access_key="wrong-secret", **RETRY)
    with pytest.raises(zenith.StorageError) as info:
        zenith.load(url("data.csv"), storage_options=opts)
    message = str(info.value)
    assert "s3://data/data.csv" in message
    assert "403" in message or "Signature" in message or "Forbidden" in message, message


def test_missing_key_and_empty_prefix(s3: S3Server) -> None:
    with pytest.raises(zenith.SourceError, match=r"s3://data/missing\.parquet"):
        zenith.load(url("missing.parquet"), storage_options=s3.options())
    with pytest.raises(zenith.SourceError, match="s3://data/nothing/"):
        zenith.load(url("nothing/"), storage_options=s3.options())


def test_bad_storage_options(s3: S3Server) -> None:
    with pytest.raises(zenith.ValidationError, match="not_an_option"):
        zenith.load(url("data.csv"), storage_options={**s3.options(), "not_an_option": "1"})
    with pytest.raises(zenith.ValidationError, match="storage_options"):
        zenith.load(url("data.csv"), storage_options=["endpoint"])  # type: ignore[arg-type]


def test_environment_credentials(s3: S3Server, monkeypatch: pytest.MonkeyPatch,
                                 datasets: dict[str, Path]) -> None:
    opts = s3.options()
    monkeypatch.setenv("AWS_ENDPOINT_URL", opts["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", opts["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", opts["aws_secret_access_key"])
    monkeypatch.setenv("AWS_REGION", opts["region"])
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    remote = zenith.load(url("data.arrows"))
    assert remote.equals(zenith.load(datasets["arrows"]))
    # storage_options override the environment.
    with pytest.raises(zenith.StorageError):
        zenith.load(url("data.arrows"), storage_options={"aws_secret_access_key": "nope",
                                                        "max_retries": "0"})


def test_listing_more_than_1000_keys(s3: S3Server, faults: FaultProxy) -> None:
    folder = s3.bucket(BUCKET) / "many"
    folder.mkdir(exist_ok=True)
    n = 1100
    for i in range(n):
        (folder / f"k{i:05d}.csv").write_text(f"id,v\n{i},{i * 2}\n")
    (folder / "_SUCCESS").write_text("")
    info = zenith.info(url("many/"), verbose=False, storage_options=via_proxy(s3, faults))
    assert len(info["files"]) == n and info["rows"] == n
    assert info["files"][0]["path"] == "s3://data/many/k00000.csv"
    lists = faults.requests(lambda r: r.method == "GET" and "list-type=2" in r.path)
    assert len(lists) >= 2  # more than one page
    table = zenith.load(url("many/k0100*.csv"), storage_options=s3.options())
    assert table.column("id").to_pylist() == list(range(1000, 1010))
    assert table.column("v").to_pylist() == [2 * i for i in range(1000, 1010)]


def test_info_and_glob_from_s3(s3: S3Server, datasets: dict[str, Path]) -> None:
    info = zenith.info(url("parquet/*.parquet"), verbose=False, storage_options=s3.options())
    local = zenith.info(datasets["parquet"], verbose=False)
    assert (info["rows"], info["bytes"], info["format"]) == (local["rows"], local["bytes"], "parquet")
    assert [f["path"] for f in info["files"]] == [
        f"s3://data/parquet/{p.name}" for p in sorted(datasets["parquet"].glob("*.parquet"))
    ]


def test_large_parquet_object_is_split_into_parallel_ranges(s3: S3Server) -> None:
    big = make_table(400_000, seed=1)
    pq.write_table(big, s3.bucket(BUCKET) / "big.parquet", row_group_size=400_000,
                   compression="none", use_dictionary=False)
    before = _zenith.storage_stats()["requests"]
    loaded = zenith.load(url("big.parquet"), storage_options=s3.options())
    assert loaded.equals(big)
    # One footer request, then the 12.8 MB row group in pieces of at most 8 MiB, cut where a
    # column chunk starts.
    assert _zenith.storage_stats()["requests"] - before >= 3


def _rows_and_sum(path: str, options: dict) -> tuple[int, int]:
    table = zenith.load(path, storage_options=options)
    return table.num_rows, int(np.asarray(table["id"]).sum())


def test_object_reads_in_forked_child(s3: S3Server, datasets: dict[str, Path],
                                      table: pa.Table) -> None:
    """The I/O runtime is rebuilt in a forked child (its parent's threads are gone there)."""
    import multiprocessing

    shutil.copytree(datasets["parquet"], s3.bucket(BUCKET) / "forked")
    expected = (table.num_rows, int(np.asarray(table["id"]).sum()))
    assert _rows_and_sum(url("forked/"), s3.options()) == expected
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_rows_and_sum, (url("forked/"), s3.options())).get(timeout=60)
    assert got == expected


def test_text_and_json_lines_from_s3_are_tokenized_like_local_files(
    s3: S3Server, faults: FaultProxy, tmp_path: Path
) -> None:
    # A word-level tokenizer written here (its ids are the words' places in the vocabulary).
    words = ["[UNK]", "<eos>", *(f"w{i}" for i in range(50))]
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(words)},
                  "unk_token": "[UNK]"},
    }))
    rng = np.random.default_rng(3)
    docs = [" ".join(f"w{j}" for j in rng.integers(0, 50, rng.integers(1, 30))) for _ in range(200)]
    folder = s3.bucket(BUCKET) / "text"
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_text("\n".join(docs[:120]) + "\n")
    with (folder / "b.jsonl").open("w") as f:
        for d in docs[120:]:
            f.write(json.dumps({"text": d}) + "\n")
    want = [t for d in docs for t in [*(int(w[1:]) + 2 for w in d.split()), 1]]
    split = sum(len(d.split()) + 1 for d in docs[:120])
    for key, (start, end) in (("text/a.txt", (0, split)), ("text/b.jsonl", (split, len(want)))):
        dl = zenith.DataLoader(url(key), batch_size=2, shuffle=False,
                               storage_options=via_proxy(s3, faults),
                               tokens=zenith.text.pack(16, tokenizer=tokenizer, eos_id="<eos>"))
        got = list(dl)
        ids = np.concatenate([b["input_ids"] for b in got])
        mask = np.concatenate([b["attention_mask"] for b in got])
        assert ids[mask == 1].tolist() == want[start:end], key
