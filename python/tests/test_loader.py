"""zenith.DataLoader: exact sample multisets, order determinism, rank split, exact resume,
error skipping, thread cleanup and collation into contiguous arrays."""

from __future__ import annotations

import gc
import socket
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zenith
from conftest import N_ROWS, interrupt_python, make_table, thread_count, write_parquet_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FORMATS = ["parquet", "csv", "arrow", "arrows"]


def epoch_ids(dl: zenith.DataLoader) -> list[int]:
    return [int(i) for b in dl for i in b["id"]]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shuffle", [False, True])
def test_epoch_is_exact_multiset(datasets: dict[str, Path], fmt: str, shuffle: bool) -> None:
    dl = zenith.DataLoader(datasets[fmt], batch_size=64, shuffle=shuffle, seed=3)
    ids = epoch_ids(dl)
    assert sorted(ids) == list(range(N_ROWS))
    if shuffle:
        assert ids != list(range(N_ROWS))
    else:
        assert ids == list(range(N_ROWS))


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_order_for_any_thread_count(datasets: dict[str, Path], fmt: str) -> None:
    orders = [
        epoch_ids(zenith.DataLoader(datasets[fmt], batch_size=50, seed=11, num_workers=w, shuffle_window=1000))
        for w in (1, 2, 8)
    ]
    assert orders[0] == orders[1] == orders[2]


def test_order_changes_with_epoch_and_seed_only(datasets: dict[str, Path]) -> None:
    path = datasets["parquet"]
    dl = zenith.DataLoader(path, batch_size=100, seed=1)
    e0 = epoch_ids(dl)
    e1 = epoch_ids(dl)  # a completed pass advances the epoch
    assert dl.epoch == 2
    dl.set_epoch(0)
    assert epoch_ids(dl) == e0
    assert e0 != e1 and sorted(e0) == sorted(e1)
    other_seed = epoch_ids(zenith.DataLoader(path, batch_size=100, seed=2))
    assert other_seed != e0
    assert epoch_ids(zenith.DataLoader(path, batch_size=7, seed=1)) == e0


def test_batch_sizes_len_and_drop_last(datasets: dict[str, Path]) -> None:
    dl = zenith.DataLoader(datasets["parquet"], batch_size=300)
    sizes = [len(b["id"]) for b in dl]
    assert sizes == [300] * 16 + [200]
    assert len(dl) == 17
    dl = zenith.DataLoader(datasets["parquet"], batch_size=300, drop_last=True)
    assert [len(b["id"]) for b in dl] == [300] * 16
    assert len(dl) == 16


def test_stacked_columns_and_dtypes(datasets: dict[str, Path], table: pa.Table) -> None:
    feats = ["f0", "f1", "f2", "f3"]
    dl = zenith.DataLoader(
        datasets["parquet"], batch_size=128, seed=5,
        columns={"x": feats, "y": "label", "i": "id", "x64": {"columns": feats, "dtype": "float64"}},
    )
    ref = np.stack([table.column(f).to_numpy() for f in feats], axis=1)
    labels = table.column("label").to_numpy()
    seen = 0
    for b in dl:
        assert set(b) == {"x", "y", "i", "x64"}
        assert b["x"].dtype == np.float32 and b["x"].shape == (len(b["i"]), 4)
        assert b["x"].flags.c_contiguous and not b["x"].flags.owndata  # Rust-owned, not copied
        assert b["y"].dtype == np.int64
        assert b["x64"].dtype == np.float64
        np.testing.assert_array_equal(b["x"], ref[b["i"]])
        np.testing.assert_array_equal(b["y"], labels[b["i"]])
        np.testing.assert_array_equal(b["x64"], ref[b["i"]].astype(np.float64))
        seen += len(b["i"])
    assert seen == N_ROWS


def test_fixed_size_list_and_strings(tmp_path: Path) -> None:
    n = 1000
    emb = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(n * 3, dtype=np.float32)), 3)
    t = pa.table({"id": np.arange(n), "emb": emb, "name": [f"n{i}" for i in range(n)]})
    pq.write_table(t, tmp_path / "e.parquet", row_group_size=100)
    for b in zenith.DataLoader(tmp_path / "e.parquet", batch_size=64, seed=0):
        assert b["emb"].shape == (len(b["id"]), 3)
        np.testing.assert_array_equal(b["emb"][:, 0], b["id"] * 3)
        assert isinstance(b["name"], pa.Array)
        assert b["name"].to_pylist() == [f"n{i}" for i in b["id"]]


def test_arrow_output(datasets: dict[str, Path]) -> None:
    batches = list(zenith.DataLoader(datasets["arrow"], batch_size=1000, shuffle=False, output="arrow"))
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(N_ROWS))


def test_nulls_in_tensor_columns_are_a_clear_error(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1.0, None, 3.0]}), tmp_path / "n.parquet")
    with pytest.raises(zenith.ValidationError, match='column "a" has 1 null values'):
        list(zenith.DataLoader(tmp_path / "n.parquet", batch_size=2))


def test_rank_split_is_a_partition_with_equal_counts(datasets: dict[str, Path]) -> None:
    parts = [
        epoch_ids(zenith.DataLoader(datasets["parquet"], batch_size=64, seed=9, rank=r, world_size=3))
        for r in range(3)
    ]
    assert [len(p) for p in parts] == [N_ROWS // 3] * 3
    union = [i for p in parts for i in p]
    assert len(set(union)) == len(union) == N_ROWS - N_ROWS % 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stop=st.integers(0, 60),
    workers_before=st.sampled_from([1, 2, 4]),
    workers_after=st.sampled_from([1, 3]),
    world_before=st.sampled_from([1, 2, 3]),
    world_after=st.sampled_from([1, 2, 4]),
    batch_size=st.sampled_from([16, 50]),
    shuffle=st.booleans(),
)
def test_resume_loses_and_repeats_nothing(
    datasets: dict[str, Path], stop: int, workers_before: int, workers_after: int,
    world_before: int, world_after: int, batch_size: int, shuffle: bool,
) -> None:
    path = datasets["parquet"]
    common = {"batch_size": batch_size, "shuffle": shuffle, "seed": 4, "shuffle_window": 900}
    uninterrupted: list[int] = []
    for r in range(world_before):
        uninterrupted += epoch_ids(zenith.DataLoader(path, rank=r, world_size=world_before, **common))
    seen: list[int] = []
    state = None
    for r in range(world_before):
        dl = zenith.DataLoader(path, rank=r, world_size=world_before, num_workers=workers_before, **common)
        stop = min(stop, len(dl) - 1)  # stop inside the epoch (a finished epoch resumes at the next)
        it = iter(dl)
        for _ in range(stop):
            batch = next(it, None)
            if batch is None:
                break
            seen += [int(i) for i in batch["id"]]
        it.close()
        state = dl.state_dict()
    assert state is not None
    for r in range(world_after):
        dl = zenith.DataLoader(path, rank=r, world_size=world_after, num_workers=workers_after, **common)
        dl.load_state_dict(state)
        seen += epoch_ids(dl)
    if stop == 0:
        # Nothing was consumed: the epoch starts afresh under the new world size.
        uninterrupted = []
        for r in range(world_after):
            uninterrupted += epoch_ids(zenith.DataLoader(path, rank=r, world_size=world_after, **common))
    assert sorted(seen) == sorted(uninterrupted)


def test_state_dict_is_small_and_rejects_other_data(datasets: dict[str, Path], tmp_path: Path) -> None:
    dl = zenith.DataLoader(datasets["parquet"], batch_size=10)
    it = iter(dl)
    next(it)
    next(it)
    state = dl.state_dict()
    assert (state["version"], state["plan"]["rows"], state["plan"]["epoch"]) == (2, 20, 0)
    assert state["stages"] == {}
    assert len(str(state)) < 400
    other = write_parquet_dir(make_table(100), tmp_path / "other", files=1)
    with pytest.raises(zenith.ValidationError, match="dataset of 5000 rows, this one has 100"):
        zenith.DataLoader(other, batch_size=10).load_state_dict(state)


def test_early_break_leaves_no_threads_or_memory(datasets: dict[str, Path]) -> None:
    import psutil

    base_threads = thread_count()
    proc = psutil.Process()
    rss = []
    for i in range(30):
        dl = zenith.DataLoader(datasets["parquet"], batch_size=32, num_workers=4, prefetch=4)
        for j, _ in enumerate(dl):
            if j == 3:
                break
        del dl
        gc.collect()
        if i in (5, 29):
            rss.append(proc.memory_info().rss)
    deadline = time.time() + 10
    while thread_count() > base_threads and time.time() < deadline:
        time.sleep(0.05)
    assert thread_count() == base_threads
    assert rss[1] - rss[0] < 20 * 1024 * 1024


def corrupt_row_group(path: Path, rg: int) -> None:
    data = bytearray(path.read_bytes())
    start = pq.ParquetFile(path).metadata.row_group(rg).column(0).data_page_offset
    data[start : start + 48] = b"\xff" * 48
    path.write_bytes(bytes(data))


def test_on_error_skip_counts_and_locates(tmp_path: Path) -> None:
    t = make_table(2000)
    d = write_parquet_dir(t, tmp_path / "ds", files=2, row_group_size=250)
    corrupt_row_group(d / "part-001.parquet", 2)
    with pytest.raises(zenith.FormatError, match=r"part-001\.parquet: row group 2"):
        list(zenith.DataLoader(d, batch_size=100))
    dl = zenith.DataLoader(d, batch_size=100, on_error="skip")
    ids = epoch_ids(dl)
    lost = set(range(1000 + 500, 1000 + 750))
    assert sorted(ids) == sorted(set(range(2000)) - lost)
    stats = dl.stats()
    assert stats["skipped_units"] == 1 and stats["skipped_rows"] == 250
    assert "part-001.parquet: row group 2" in stats["skipped"][0]


def test_stats_per_stage(datasets: dict[str, Path]) -> None:
    dl = zenith.DataLoader(datasets["parquet"], batch_size=100, columns={"x": ["f0", "f1"], "y": "label"})
    list(dl)
    s = dl.stats()
    assert s["rows"] == N_ROWS and s["batches"] == 50
    assert s["bytes"] == N_ROWS * (2 * 4 + 8)
    for key in ("read_s", "decode_s", "shuffle_s", "collate_s", "wait_s", "handover_s"):
        assert s[key] >= 0.0
    assert s["read_s"] > 0.0
    # Every delivered batch was handed over to NumPy arrays, which the bindings time.
    assert s["handover_s"] > 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "8"}, "batch_size"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"num_workers": 0}, "num_workers"),
        ({"on_error": "ignore"}, "on_error"),
        ({"output": "pandas"}, "output"),
        ({"columns": {"x": ["f0", "nope"]}}, "unknown column"),
        ({"columns": {"x": 3}}, "columns"),
        ({"columns": {"x": {"columns": ["f0"], "dtype": "complex"}}}, "dtype"),
    ],
)
def test_bad_arguments(datasets: dict[str, Path], kwargs: dict, message: str) -> None:
    with pytest.raises(zenith.ZenithError, match=message):
        zenith.DataLoader(datasets["parquet"], **kwargs)


def test_engine_validation_errors_name_field_and_rule(datasets: dict[str, Path]) -> None:
    with pytest.raises(zenith.ValidationError) as err:
        zenith.DataLoader(datasets["parquet"], on_error="ignore")
    assert err.value.field == "on_error"
    assert err.value.rule == '"ignore"; expected "raise" or "skip"'
    assert str(err.value) == 'invalid argument `on_error`: "ignore"; expected "raise" or "skip"'


def test_ctrl_c_interrupts_iteration(datasets: dict[str, Path]) -> None:
    code = (
        "import sys, zenith\n"
        "dl = zenith.DataLoader(sys.argv[1], batch_size=1)\n"
        "print('started', flush=True)\n"
        "while True:\n    for b in dl: pass\n"
    )
    err = interrupt_python(code, [str(datasets["parquet"])], settle=0.3)
    assert "KeyboardInterrupt" in err


@pytest.mark.parametrize(
    "call",
    [
        "zenith.load('s3://b/d/', storage_options=opts)",
        "zenith.info('s3://b/d/', storage_options=opts, verbose=False)",
        "zenith.DataLoader('s3://b/d/', storage_options=opts)",
    ],
)
def test_ctrl_c_interrupts_a_blocked_call(call: str) -> None:
    """A call blocked on storage (a server on 127.0.0.1 that accepts and never answers)
    raises KeyboardInterrupt when interrupted, instead of waiting out the request timeouts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        code = (
            "import sys, zenith\n"
            f"opts = dict(endpoint='http://127.0.0.1:{port}', allow_http='true', region='us-east-1',\n"
            "            aws_access_key_id='k', aws_secret_access_key='s', timeout='120s')\n"
            "print('started', flush=True)\n"
            f"{call}\n"
        )
        err = interrupt_python(code, settle=1.0)
    assert "KeyboardInterrupt" in err, err


def test_a_version_1_state_resumes_like_its_version_2_form(datasets: dict[str, Path]) -> None:
    """States written before stages had sections (the plan's fields at the top) still load."""
    dl = zenith.DataLoader(datasets["parquet"], batch_size=10, seed=3)
    it = iter(dl)
    for _ in range(3):
        next(it)
    state = dl.state_dict()
    rest_v2 = zenith.DataLoader(datasets["parquet"], batch_size=10, seed=3)
    rest_v2.load_state_dict(state)
    rest_v1 = zenith.DataLoader(datasets["parquet"], batch_size=10, seed=3)
    rest_v1.load_state_dict({"version": 1, **state["plan"]})
    remaining = [int(i) for b in it for i in b["id"]]
    assert epoch_ids(rest_v1) == epoch_ids(rest_v2) == remaining
    assert len(remaining) == N_ROWS - 30
    with pytest.raises(zenith.ValidationError, match="unknown state version 7"):
        rest_v1.load_state_dict({**state, "version": 7})
    with pytest.raises(zenith.ValidationError, match='section for stage "pack"') as err:
        rest_v1.load_state_dict({**state, "stages": {"pack": {}}})
    assert err.value.field == "state"


@pytest.mark.parametrize("fmt", FORMATS)
def test_reused_epochs_equal_decoded_epochs(datasets: dict[str, Path], fmt: str) -> None:
    """Later epochs served from kept decoded data deliver what decoding again delivers."""
    kept = zenith.DataLoader(datasets[fmt], batch_size=64, seed=5, shuffle_window=700)
    fresh = zenith.DataLoader(
        datasets[fmt], batch_size=64, seed=5, shuffle_window=700, reuse_budget=0
    )
    for _ in range(3):
        assert epoch_ids(kept) == epoch_ids(fresh)
    stats = kept.stats()
    assert stats["reused_units"] > 0 and stats["kept_bytes"] > 0
    assert (fresh.stats()["reused_units"], fresh.stats()["kept_bytes"]) == (0, 0)
    with pytest.raises(zenith.ValidationError, match="reuse_budget"):
        zenith.DataLoader(datasets[fmt], reuse_budget=-1)
