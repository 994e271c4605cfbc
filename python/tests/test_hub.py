"""Hugging Face Hub (``hf://datasets/...``) and web (``http(s)://``) sources, against a local
stand-in for the hub on 127.0.0.1 (``hub_server.py``): paginated tree listings, globs,
revisions, tokens from ``HF_TOKEN`` and ``storage_options``, ``HF_ENDPOINT``, redirects of large
files, ranged reads, the disk cache, and errors that name the repository or file."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zenith
from hub_server import HubServer
from zenith import _zenith
from zenith.exceptions import StorageError, ValidationError, ZenithError

REPO = "acme/corpus"
ROWS = 5000


def table(offset: int = 0) -> pa.Table:
    ids = np.arange(offset, offset + ROWS, dtype=np.int64)
    return pa.table({"id": ids, "text": [f"doc {i}" for i in ids]})


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """Repository acme/corpus: at ``main`` five Parquet files and a .gitattributes under data/
    (two files large enough to be redirected), a CSV and a tar shard; at
    ``refs/convert/parquet`` one file; web files."""
    root = tmp_path_factory.mktemp("hub")
    main = root / "acme" / "corpus" / "main"
    (main / "data").mkdir(parents=True)
    for i in range(5):
        pq.write_table(table(i * ROWS), main / "data" / f"train-{i:05d}-of-00005.parquet",
                       row_group_size=1000)
    pacsv.write_csv(table(), main / "t.csv")
    with tarfile.open(main / "shard-000.tar", "w") as tar:
        for i in range(10):
            for ext, payload in (("cls", str(i).encode()), ("txt", f"sample {i}".encode())):
                info = tarfile.TarInfo(f"{i:04d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    (main / "data" / ".gitattributes").write_text("*.parquet filter=lfs\n")
    converted = root / "acme" / "corpus" / "refs" / "convert" / "parquet" / "default" / "train"
    converted.mkdir(parents=True)
    pq.write_table(table(100_000), converted / "0000.parquet")
    web = root / "web"
    web.mkdir()
    pq.write_table(table(), web / "one.parquet", row_group_size=500)
    pacsv.write_csv(table(), web / "one.csv")
    sizes = sorted(p.stat().st_size for p in (main / "data").iterdir())
    server = HubServer(root, page_size=2, lfs_above=sizes[-2]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hf_env(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub.token = None
    hub.requests.clear()
    return hub


def expected(n_files: int = 5) -> pa.Table:
    return pa.concat_tables([table(i * ROWS) for i in range(n_files)])


def test_a_repository_folder_reads_like_local_files(hf_env: HubServer) -> None:
    # data/.gitattributes is listed by the hub and skipped like any hidden file.
    got = zenith.load(f"hf://datasets/{REPO}/data")
    assert got.equals(expected())
    # Six files in pages of two: three listing requests, each following the last Link.
    pages = [r for r in hf_env.requests if r.path.startswith("/api/")]
    assert len(pages) == 3 and all("recursive=true" in r.path for r in pages)
    # The two largest files were fetched from where the hub redirected them, by range.
    assert any(r.path.startswith("/lfs/") and r.range for r in hf_env.requests)
    info = zenith.info(f"hf://datasets/{REPO}/data/*.parquet", verbose=False)
    assert (info["rows"], len(info["files"])) == (5 * ROWS, 5)
    assert info["files"][0]["path"] == f"hf://datasets/{REPO}@main/data/train-00000-of-00005.parquet"


def test_globs_files_revisions_and_formats(hf_env: HubServer) -> None:
    two = zenith.load(f"hf://datasets/{REPO}/data/train-0000[13]-*.parquet")
    assert two["id"].to_pylist() == list(range(ROWS, 2 * ROWS)) + list(range(3 * ROWS, 4 * ROWS))
    one = zenith.load(f"hf://datasets/{REPO}@main/data/train-00002-of-00005.parquet",
                      columns=["id"])
    assert one["id"].to_pylist() == list(range(2 * ROWS, 3 * ROWS))
    conv = zenith.load(f"hf://datasets/{REPO}@refs/convert/parquet/default/train")
    assert conv.equals(table(100_000))
    assert zenith.load(f"hf://datasets/{REPO}@refs%2Fconvert%2Fparquet/default").equals(conv)
    csv = zenith.load(f"hf://datasets/{REPO}/t.csv")
    assert csv["id"].to_pylist() == list(range(ROWS))
    shard = zenith.load(f"hf://datasets/{REPO}/shard-000.tar")
    assert shard["cls"].to_pylist() == list(range(10))


def test_a_loader_epoch_over_the_hub(hf_env: HubServer) -> None:
    dl = zenith.DataLoader(f"hf://datasets/{REPO}/data", batch_size=700, seed=1,
                           columns=["id"])
    ids = [int(i) for b in dl for i in b["id"]]
    assert sorted(ids) == list(range(5 * ROWS)) and ids != sorted(ids)


def test_tokens_come_from_the_environment_or_the_options(
    hf_env: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_env.token = "hf_secret"
    with pytest.raises(StorageError, match="HF_TOKEN") as err:
        zenith.load(f"hf://datasets/{REPO}/data")
    assert f"hf://datasets/{REPO}@main" in str(err.value)
    got = zenith.load(f"hf://datasets/{REPO}/data", storage_options={"hf_token": "hf_secret"})
    assert got.num_rows == 5 * ROWS
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert zenith.load(f"hf://datasets/{REPO}/t.csv").num_rows == ROWS
    # The token is sent to the hub, and not to the storage a large file is redirected to.
    assert all(r.path.startswith(("/api/", "/datasets/", "/lfs/")) for r in hf_env.requests)


def test_the_disk_cache_serves_hub_files(hf_env: HubServer, tmp_path: Path) -> None:
    first = zenith.load(f"hf://datasets/{REPO}/data", cache_dir=tmp_path, cache=False)
    hf_env.requests.clear()
    before = _zenith.storage_stats()
    again = zenith.load(f"hf://datasets/{REPO}/data", cache_dir=tmp_path, cache=False)
    assert again.equals(first) and hf_env.requests == []
    assert _zenith.storage_stats()["requests"] == before["requests"]


def test_missing_repositories_files_and_bad_urls_are_named(hf_env: HubServer) -> None:
    with pytest.raises(ZenithError, match=re.escape("hf://datasets/acme/corpus/data/nope.parquet")):
        zenith.load(f"hf://datasets/{REPO}/data/nope.parquet")
    with pytest.raises(ZenithError, match="acme/missing"):
        zenith.load("hf://datasets/acme/missing/data")
    with pytest.raises(ValidationError, match="only dataset repositories"):
        zenith.load("hf://models/acme/bert/x.parquet")
    with pytest.raises(ValidationError, match="hf://datasets/<org>/<name>"):
        zenith.load("hf://datasets/acme")


def test_web_files_by_url(hf_env: HubServer) -> None:
    base = f"{hf_env.endpoint}/files"
    got = zenith.load(f"{base}/one.parquet", columns=["id"])
    assert got["id"].to_pylist() == list(range(ROWS))
    gets = [r for r in hf_env.requests if r.method == "GET"]
    assert gets and all(r.range for r in gets), gets  # ranged reads, never the whole file blind
    csv = zenith.load(f"{base}/one.csv")
    assert csv["id"].to_pylist() == list(range(ROWS))
    dl = zenith.DataLoader(f"{base}/one.parquet", batch_size=1000, shuffle=False, columns=["id"])
    assert [int(i) for b in dl for i in b["id"]] == list(range(ROWS))
    with pytest.raises(ValidationError, match="cannot be listed"):
        zenith.load(f"{base}/*.parquet")
    with pytest.raises(ZenithError, match=re.escape("files/absent.parquet")):
        zenith.load(f"{base}/absent.parquet")
