"""The data commands of the ``zenith`` command line and the verdict behind ``zenith bench``:
``stats()["bottleneck"]`` names the consumer when batches wait for it and the reading stage when
the decode threads cannot keep up; ``zenith bench`` prints the rates, the stage times and the
verdict, as text or JSON; ``zenith head`` prints the first rows as a table of shortened values;
both with the documented exit codes."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zenith
from zenith import cli

LOADER_STAGES = {"reading", "decoding", "collate", "packing", "handover"}


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    n = 10_000
    table = pa.table({"x": np.arange(n, dtype=np.float32), "y": np.arange(n, dtype=np.int64) % 7})
    pq.write_table(table, root / "t.parquet", row_group_size=1000)
    return root / "t.parquet"


def test_a_slow_consumer_is_the_bottleneck(table_path: Path) -> None:
    dl = zenith.DataLoader(str(table_path), batch_size=500, num_workers=1)
    assert dl.stats()["bottleneck"] is None
    for _ in dl:
        time.sleep(0.03)
    s = dl.stats()
    assert s["batches"] == 20 and s["iterate_s"] >= 0.6
    assert s["bottleneck"] == "consumer", s
    assert s["bottleneck_hint"].startswith("batches were ready")


def test_a_loader_that_cannot_keep_up_names_its_reading(tmp_path: Path) -> None:
    # CSV text of many float columns, parsed on one thread, consumed by a loop that does nothing.
    rng = np.random.default_rng(0)
    table = pa.table({f"c{i}": rng.random(60_000) for i in range(16)})
    pacsv.write_csv(table, tmp_path / "t.csv")
    dl = zenith.DataLoader(str(tmp_path / "t.csv"), batch_size=256, num_workers=1)
    for _ in dl:
        pass
    s = dl.stats()
    assert s["threads"] == 1
    assert s["bottleneck"] == "reading", s
    assert "raise num_workers" in s["bottleneck_hint"]


def test_zenith_bench_prints_rates_stages_and_the_bottleneck(
    table_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["bench", str(table_path), "--batch-size", "100", "--epochs", "2", "--json"])
    assert code == cli.EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["epochs"], report["rows"], report["batches"]) == (2, 20_000, 200)
    assert report["bytes"] == 20_000 * (4 + 8)
    assert report["first_batch_s"] > 0 and report["rows_per_s"] > 0
    assert set(report["stages_s"]) >= {"read_s", "collate_s", "wait_s"}
    assert report["bottleneck"] in LOADER_STAGES | {"consumer"}
    code = cli.main(["bench", str(table_path), "--batch-size", "100", "--columns", "y", "--no-shuffle"])
    assert code == cli.EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"zenith bench {table_path}: 1 epoch, batch_size 100")
    assert "  rows         10,000 (" in out
    assert "  bytes        80.0 KB (" in out
    assert "seconds per stage (summed over threads): read " in out
    assert "  bottleneck   " in out


def test_zenith_bench_exit_codes(table_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", str(table_path.parent / "missing.parquet")]) == cli.EXIT_FAILED
    assert "missing.parquet" in capsys.readouterr().err
    assert cli.main(["bench", str(table_path), "--batch-size", "0"]) == cli.EXIT_USAGE
    assert "--batch-size" in capsys.readouterr().err
    assert cli.main(["bench", str(table_path), "--columns", "nope"]) == cli.EXIT_FAILED
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench"])
    assert exc.value.code == cli.EXIT_USAGE


def test_zenith_head_prints_the_first_rows_with_long_values_shortened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = pa.table({
        "id": [1, 2, 3],
        "text": ["short", "a much longer piece of text that goes on and on and on", "two\nlines"],
        "ids": [[1, 2, 3, 4, 5, 6], [], None],
        "x": [0.5, 1 / 3, None],
        "blob": [b"abc", b"", b"\x00" * 100],
        "s": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "z"}],
    })
    pq.write_table(t, tmp_path / "h.parquet")
    assert cli.main(["head", str(tmp_path / "h.parquet")]) == cli.EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "id  text                                      ids                       x         blob         s",
        "1   short                                     [1, 2, 3, ... (6 items)]  0.5       <3 bytes>    {a: 1, b: x}",
        "2   a much longer piece of text that goes...  []                        0.333333  <0 bytes>    {a: 2, b: y}",
        "3   two\\nlines                                null                      null      <100 bytes>  {a: 3, b: z}",
    ]
    assert cli.main(["head", str(tmp_path / "h.parquet"), "-n", "1", "--columns", "x,id"]) == cli.EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["x    id", "0.5  1"]
    assert cli.main(["head", str(tmp_path / "h.parquet"), "-n", "0"]) == cli.EXIT_USAGE
    assert cli.main(["head", str(tmp_path / "nothing.csv")]) == cli.EXIT_FAILED


def test_zenith_head_reads_only_the_first_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A file whose second row group is damaged: the first rows still print.
    path = damaged_second_row_group(tmp_path / "d.parquet")
    with pytest.raises(zenith.ZenithError):
        list(zenith.DataLoader(str(path), batch_size=1000, shuffle=False))
    assert cli.main(["head", str(path), "-n", "3"]) == cli.EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["v", "0", "1", "2"]


def test_zenith_inspect_reports_codecs_sizes_and_statistics_from_the_footers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = pa.table({"a": np.arange(1000, dtype=np.int64), "s": [f"v{i:03d}" for i in range(1000)]})
    pq.write_table(t, tmp_path / "g.parquet", compression={"a": "gzip", "s": "none"}, row_group_size=300)
    pq.write_table(t, tmp_path / "z.parquet", compression="zstd", row_group_size=500)
    assert cli.main(["inspect", str(tmp_path), "--json"]) == cli.EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["format"], report["rows"], report["files"], report["units"]) == ("parquet", 2000, 2, 6)
    metas = [pq.ParquetFile(tmp_path / f).metadata for f in ("g.parquet", "z.parquet")]

    def total(column: int, key: str) -> int:
        return sum(getattr(m.row_group(r).column(column), key) for m in metas for r in range(m.num_row_groups))

    a, s = report["columns"]
    assert a == {
        "column": "a", "compression": ["GZIP", "ZSTD"],
        "compressed_bytes": total(0, "total_compressed_size"),
        "uncompressed_bytes": total(0, "total_uncompressed_size"),
        "min": 0, "max": 999, "null_count": 0,
    }
    assert (s["compression"], s["min"], s["max"]) == (["UNCOMPRESSED", "ZSTD"], "v000", "v999")
    assert report["uncompressed_bytes"] == total(0, "total_uncompressed_size") + total(1, "total_uncompressed_size")
    assert report["schema"] == [
        {"name": "a", "type": "int64", "nullable": True},
        {"name": "s", "type": "string", "nullable": True},
    ]
    assert [f["rows"] for f in report["file_list"]] == [1000, 1000]
    assert cli.main(["inspect", str(tmp_path)]) == cli.EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path}: parquet, 2,000 rows in 2 files, 6 row groups"
    assert out[1].startswith("  on disk ") and "; pages before compression " in out[1]
    assert out[2:5] == ["schema:", "  a: int64", "  s: string"]
    assert out[5:7] == ["columns:", "  column  compression         on disk  uncompressed  min   max   nulls"]
    assert out[7].split()[:3] == ["a", "GZIP,", "ZSTD"] and out[7].split()[-3:] == ["0", "999", "0"]
    assert out[9:10] == ["files:"]


def test_zenith_inspect_of_a_csv_and_of_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.csv").write_text("x,y\n1,a\n2,b\n")
    assert cli.main(["inspect", str(tmp_path / "t.csv")]) == cli.EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path / 't.csv'}: csv, 2 rows in 1 file, 1 unit"
    assert out[1] == "  on disk 12 B"
    assert "columns:" not in out
    assert cli.main(["inspect", str(tmp_path / "none.parquet")]) == cli.EXIT_FAILED
    assert "none.parquet" in capsys.readouterr().err


def damaged_second_row_group(path: Path, rows: int = 2000) -> Path:
    """A file of ``rows`` int64 values in row groups of half of them, the second one garbage."""
    pq.write_table(pa.table({"v": np.arange(rows, dtype=np.int64)}), path, row_group_size=rows // 2,
                   compression="none")
    second = pq.ParquetFile(path).metadata.row_group(1).column(0)
    start = second.dictionary_page_offset or second.data_page_offset
    data = bytearray(path.read_bytes())
    data[start + 8 : start + second.total_compressed_size] = b"\xff" * (second.total_compressed_size - 8)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("to", ["parquet", "csv", "ipc"])
def test_zenith_convert_writes_every_row_in_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], to: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    t = pa.table({"i": np.arange(5000, dtype=np.int64), "s": [f"r{i}" for i in range(5000)],
                  "f": np.linspace(0, 1, 5000)})
    pq.write_table(t.slice(0, 3000), src / "a.parquet", row_group_size=700)
    pq.write_table(t.slice(3000), src / "b.parquet", row_group_size=700)
    dst = tmp_path / f"out.{to}"
    extra = ["--compression", "zstd"] if to != "csv" else []
    code = cli.main(["convert", str(src), str(dst), "--to", to, "--row-group-size", "1000", *extra])
    assert code == cli.EXIT_OK
    assert capsys.readouterr().err.startswith(f"zenith: wrote 5,000 rows to {dst} ({to}) in ")
    if to == "parquet":
        got = pq.read_table(dst)
        meta = pq.ParquetFile(dst).metadata
        assert [meta.row_group(r).num_rows for r in range(meta.num_row_groups)] == [1000] * 5
        assert meta.row_group(0).column(0).compression == "ZSTD"
    elif to == "csv":
        got = pacsv.read_csv(dst)
    else:
        got = pa.ipc.open_file(dst).read_all()
    assert got.equals(t), to
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["src", dst.name])


def test_zenith_convert_keeps_what_the_user_had_and_leaves_nothing_half_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = damaged_second_row_group(tmp_path / "d.parquet")
    dst = tmp_path / "out.parquet"
    dst.write_text("mine")
    assert cli.main(["convert", str(src), str(dst), "--to", "parquet"]) == cli.EXIT_USAGE
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert dst.read_text() == "mine"
    # The damaged row group fails the conversion: the old file stays, no partial file is left.
    code = cli.main(["convert", str(src), str(dst), "--to", "parquet", "--overwrite",
                     "--row-group-size", "500"])
    assert code == cli.EXIT_FAILED
    assert "d.parquet" in capsys.readouterr().err
    assert dst.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet", "out.parquet"]
    csv_zstd = ["convert", str(src), str(tmp_path / "o.csv"), "--to", "csv", "--compression", "zstd"]
    assert cli.main(csv_zstd) == cli.EXIT_USAGE
    assert "'zstd' for csv; csv is written uncompressed" in capsys.readouterr().err
    ipc_snappy = ["convert", str(src), str(tmp_path / "o.arrow"), "--to", "ipc", "--compression", "snappy"]
    assert cli.main(ipc_snappy) == cli.EXIT_USAGE
    assert "expected one of zstd, lz4" in capsys.readouterr().err
    wds = ["convert", str(src), str(tmp_path / "wds"), "--to", "webdataset", "--row-group-size", "500"]
    assert cli.main(wds) == cli.EXIT_FAILED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet", "out.parquet"]


def test_convert_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_PROGRESS_EVERY", 0.0)
    p = cli._Progress(400, "convert to csv")
    p.update(100)
    p.close()
    line = capsys.readouterr().err.strip()
    assert line.startswith("zenith: convert to csv: 100/400 rows, ") and line.endswith(" s left"), line

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = cli._Progress(400, "convert to csv")
    bar.update(400)
    bar.close()
    assert "convert to csv: 100%" in term.getvalue() and "400/400" in term.getvalue()


def test_zenith_convert_to_webdataset_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tarfile

    t = pa.table({"__key__": [f"s{i:04d}" for i in range(25)], "cls": np.arange(25, dtype=np.int64),
                  "txt": [f"text {i}" for i in range(25)]})
    pq.write_table(t, tmp_path / "t.parquet", row_group_size=10)
    out = tmp_path / "shards"
    args = ["convert", str(tmp_path / "t.parquet"), str(out), "--to", "webdataset", "--shard-size", "10"]
    assert cli.main([*args, "--row-group-size", "7"]) == cli.EXIT_OK
    assert f"wrote 25 rows to 3 shards at {out}/shard-%06d.tar" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards", "t.parquet"]
    with tarfile.open(out / "shard-000001.tar") as tar:
        names = tar.getnames()
        assert names[:2] == ["s0010.cls", "s0010.txt"] and len(names) == 20
        member = tar.extractfile("s0012.txt")
        assert member is not None and member.read() == b"text 12"
    # Read back through the loader, in order.
    back = next(iter(zenith.DataLoader(str(out), batch_size=25, shuffle=False)))
    assert list(np.asarray(back["cls"])) == list(range(25))
    assert cli.main(args) == cli.EXIT_USAGE
    assert "shard-000000.tar exists; pass --overwrite" in capsys.readouterr().err


def test_load_and_write_webdataset_show_progress_when_asked(
    table_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = zenith.load(str(table_path), progress=True, cache=False)
    assert table.num_rows == 10_000
    err = capsys.readouterr().err
    assert "zenith.load: 100%" in err and "10.0k/10.0k" in err, err
    assert zenith.load(str(table_path), cache=False).num_rows == 10_000
    assert capsys.readouterr().err == ""
    shards = zenith.write_webdataset(table.slice(0, 50).rename_columns(["x", "cls"]),
                                     str(tmp_path / "s-%03d.tar"), maxcount=20, progress=True)
    assert len(shards) == 3
    err = capsys.readouterr().err
    assert "write_webdataset: 100%" in err and "50.0/50.0" in err, err
