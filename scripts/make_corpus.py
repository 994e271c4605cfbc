"""Writes a corpus of small Parquet files as other tools leave them, for checking that Zenith reads
every one with pyarrow's schema and values (python/tests/test_parquet_corpus.py runs it into a
temporary directory; the corpus is not checked in).

Classes of files (the file name starts with the class):
  pa-types-*     every physical and logical type pyarrow writes, under each codec, data page
                 version 1 and 2, statistics off, page indexes, dictionaries off;
  pa-enc-*       one file per encoding (column_encoding=) with the columns pyarrow allows it for;
  pa-nested-*    lists, structs and maps up to depth 3 with nulls at every level, also legacy
                 two-level lists (use_compliant_nested_type=False);
  pa-int96-*     INT96 timestamps (use_deprecated_int96_timestamps=True), in and out of the
                 nanosecond range;
  polars-*       polars write_parquet (its own writer and use_pyarrow=True);
  duckdb-*       DuckDB COPY ... TO ... (FORMAT parquet);
  fastparquet-*  fastparquet.write (incl. times="int96" and object columns with nulls).
A writer that is not installed, or an option this pyarrow refuses, is skipped and reported.

Usage: python scripts/make_corpus.py OUT_DIR
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N = 1500
CODECS = ["snappy", "gzip", "brotli", "lz4", "zstd", "none"]


def _nulls(values: list, every: int = 7) -> list:
    """`values` with every `every`-th entry (from the 3rd) replaced by None."""
    return [None if i % every == 3 else v for i, v in enumerate(values)]


def types_table(n: int = N) -> pa.Table:
    """One column per type pyarrow writes, each with nulls (except the null type, all null)."""
    i = np.arange(n)
    utc = dt.UTC
    base = dt.datetime(2020, 1, 1, tzinfo=utc)
    cols: dict[str, pa.Array] = {
        "bool": pa.array(_nulls([bool(x % 3) for x in i])),
        "i8": pa.array(_nulls([int(x % 256) - 128 for x in i]), pa.int8()),
        "i16": pa.array(_nulls([int(x * 37 % 65536) - 32768 for x in i]), pa.int16()),
        "i32": pa.array(_nulls([int(x * 7919) - 2**31 for x in i]), pa.int32()),
        "i64": pa.array(_nulls([int(x) * 10**15 - 2**63 + 1 for x in i]), pa.int64()),
        "u8": pa.array(_nulls([int(x % 256) for x in i]), pa.uint8()),
        "u16": pa.array(_nulls([int(x * 41 % 65536) for x in i]), pa.uint16()),
        "u32": pa.array(_nulls([2**32 - 1 - int(x) * 1000 for x in i]), pa.uint32()),
        "u64": pa.array(_nulls([2**64 - 1 - int(x) * 10**12 for x in i]), pa.uint64()),
        "f16": pa.array(_nulls([np.float16(x / 8 - 50) for x in i]), pa.float16()),
        "f32": pa.array(_nulls([float(np.float32(x * 0.37 - 100)) for x in i]), pa.float32()),
        "f64": pa.array(_nulls([x * 1e-3 - 0.5 for x in i.tolist()]), pa.float64()),
        "dec_4_2": pa.array(_nulls([decimal.Decimal(int(x % 9999) - 4999) / 100 for x in i]), pa.decimal128(4, 2)),
        "dec_9_3": pa.array(_nulls([decimal.Decimal(int(x) * 1237 - 999999) / 1000 for x in i]), pa.decimal128(9, 3)),
        "dec_18_0": pa.array(_nulls([decimal.Decimal(int(x) * 10**14 - 10**17) for x in i]), pa.decimal128(18, 0)),
        "dec_38_10": pa.array(
            _nulls([decimal.Decimal(int(x) * 10**25 - 10**27) / 10**10 for x in i]), pa.decimal128(38, 10)
        ),
        "dec256_50_5": pa.array(
            _nulls([decimal.Decimal(int(x) * 10**40 - 10**43) / 10**5 for x in i]), pa.decimal256(50, 5)
        ),
        "date32": pa.array(
            _nulls([dt.date(1970, 1, 1) + dt.timedelta(days=int(x) * 17 - 9000) for x in i]), pa.date32()
        ),
        "date64": pa.array(
            _nulls([dt.date(2000, 1, 1) + dt.timedelta(days=int(x)) for x in i]), pa.date64()
        ),
        "time32_s": pa.array(_nulls([int(x * 57 % 86400) for x in i]), pa.time32("s")),
        "time32_ms": pa.array(_nulls([int(x * 57123 % 86400000) for x in i]), pa.time32("ms")),
        "time64_us": pa.array(_nulls([int(x) * 57123457 % 86400000000 for x in i]), pa.time64("us")),
        "time64_ns": pa.array(_nulls([int(x) * 57123457891 % 86400000000000 for x in i]), pa.time64("ns")),
        "dur_s": pa.array(_nulls([int(x) * 3601 - 10**6 for x in i]), pa.duration("s")),
        "dur_ns": pa.array(_nulls([int(x) * 10**12 + 7 for x in i]), pa.duration("ns")),
        "bin": pa.array(_nulls([bytes([x % 256]) * int(x % 11) for x in i]), pa.binary()),
        "lbin": pa.array(_nulls([b"\x00\xff" * int(x % 5) for x in i]), pa.large_binary()),
        "str": pa.array(_nulls([f"s{x}é" * int(x % 4) for x in i])),
        "lstr": pa.array(_nulls([f"long{x % 13}" for x in i]), pa.large_string()),
        "fsb": pa.array(_nulls([int(x).to_bytes(4, "little") for x in i]), pa.binary(4)),
        "dict_str": pa.array(_nulls([f"cat{x % 9}" for x in i])).dictionary_encode(),
        "null": pa.nulls(n),
    }
    for unit in ["s", "ms", "us", "ns"]:
        step = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
        values = [int(x) * 86399 * step + step // 3 for x in i]
        cols[f"ts_{unit}"] = pa.array(_nulls(values), pa.timestamp(unit))
        cols[f"ts_{unit}_tz"] = pa.array(_nulls(values), pa.timestamp(unit, tz="Europe/Paris"))
    cols["ts_us_utc"] = pa.array(
        _nulls([base + dt.timedelta(seconds=int(x) * 3.5) for x in i]), pa.timestamp("us", "UTC")
    )
    return pa.table(cols)


def nested_table(n: int = 600) -> pa.Table:
    """Lists, structs and maps nested up to three deep, nulls at every level."""
    rng = np.random.default_rng(5)

    def maybe(v: object, p: float = 0.15) -> object:
        return None if rng.random() < p else v

    def ints(k: int) -> list:
        return [maybe(int(rng.integers(-1000, 1000))) for _ in range(k)]

    def lst(make: Callable[[], object]) -> list | None:
        return maybe([make() for _ in range(int(rng.integers(0, 4)))])

    cols = {
        "l_i32": ([lst(lambda: maybe(int(rng.integers(-9, 9)))) for _ in range(n)], pa.list_(pa.int32())),
        # Null and empty lists, no null element: the shape the engine decodes directly.
        "l_i64_dense": ([lst(lambda: int(rng.integers(-9, 9))) for _ in range(n)], pa.list_(pa.int64())),
        "l_f32_dense": ([lst(lambda: float(rng.random())) for _ in range(n)], pa.list_(pa.float32())),
        "l_l_i64": ([lst(lambda: lst(lambda: maybe(int(rng.integers(-9, 9))))) for _ in range(n)],
                    pa.list_(pa.list_(pa.int64()))),
        "l_l_l_str": ([lst(lambda: lst(lambda: lst(lambda: maybe(f"x{rng.integers(99)}")))) for _ in range(n)],
                      pa.list_(pa.list_(pa.list_(pa.string())))),
        "ll_f64": ([lst(lambda: maybe(float(rng.random()))) for _ in range(n)], pa.large_list(pa.float64())),
        "fsl_f32": ([maybe([maybe(float(np.float32(rng.random()))) for _ in range(3)]) for _ in range(n)],
                    pa.list_(pa.float32(), 3)),
        "st": ([maybe({"a": maybe(int(rng.integers(100))), "b": maybe(f"b{rng.integers(9)}")}) for _ in range(n)],
               pa.struct([("a", pa.int16()), ("b", pa.string())])),
        "st_l_st": (
            [maybe({"xs": lst(lambda: maybe({"v": maybe(float(rng.random())), "w": ints(2)}))}) for _ in range(n)],
            pa.struct([("xs", pa.list_(pa.struct([("v", pa.float64()), ("w", pa.list_(pa.int64()))])))]),
        ),
        "l_st": ([lst(lambda: maybe({"k": maybe(int(rng.integers(9))), "d": maybe(dt.date(2020, 1, 1))}))
                  for _ in range(n)],
                 pa.list_(pa.struct([("k", pa.uint8()), ("d", pa.date32())]))),
        "map_s_i": ([maybe([(f"k{j}", maybe(int(rng.integers(9)))) for j in range(int(rng.integers(0, 3)))])
                     for _ in range(n)],
                    pa.map_(pa.string(), pa.int32())),
        "map_i_l": ([maybe([(j, lst(lambda: maybe(f"v{rng.integers(9)}"))) for j in range(int(rng.integers(0, 3)))])
                     for _ in range(n)],
                    pa.map_(pa.int64(), pa.list_(pa.string()))),
        "l_dec": ([lst(lambda: maybe(decimal.Decimal(int(rng.integers(-99999, 99999))) / 100)) for _ in range(n)],
                  pa.list_(pa.decimal128(7, 2))),
        "l_u16": ([lst(lambda: maybe(int(rng.integers(0, 65535)))) for _ in range(n)], pa.list_(pa.uint16())),
        "l_i8": ([lst(lambda: maybe(int(rng.integers(-128, 127)))) for _ in range(n)], pa.list_(pa.int8())),
        "l_ts": ([lst(lambda: maybe(int(rng.integers(0, 10**15)))) for _ in range(n)],
                 pa.list_(pa.timestamp("us", "UTC"))),
        "l_dict": ([lst(lambda: maybe(f"d{rng.integers(5)}")) for _ in range(n)], pa.list_(pa.string())),
    }
    return pa.table({k: pa.array(v, t) for k, (v, t) in cols.items()})


def write_pyarrow(out: Path, skipped: list[str]) -> None:
    t = types_table()

    def w(name: str, table: pa.Table, **kw: object) -> None:
        try:
            pq.write_table(table, out / f"{name}.parquet", **kw)
        except (pa.ArrowException, OSError, ValueError, TypeError) as e:
            skipped.append(f"{name}: {e}")
            (out / f"{name}.parquet").unlink(missing_ok=True)

    for codec in CODECS:
        for version in ["1.0", "2.0"]:
            w(f"pa-types-{codec}-v{version[0]}", t, compression=codec, data_page_version=version, row_group_size=700)
    w("pa-types-nostats", t, write_statistics=False)
    w("pa-types-pageindex", t, write_page_index=True, data_page_size=2048)
    w("pa-types-nodict", t, use_dictionary=False, data_page_size=4096)
    w("pa-types-format-2.4", t, version="2.4", coerce_timestamps="us", allow_truncated_timestamps=True)
    w("pa-types-format-1.0", t, version="1.0", coerce_timestamps="us", allow_truncated_timestamps=True)
    w("pa-types-smallpages", t, data_page_size=512, write_batch_size=64, row_group_size=1000)
    # The direct path's columns, without nulls, under every codec and both page versions.
    flat = pa.table({
        "i32": pa.array(np.arange(N, dtype=np.int32) * 3 - 7),
        "i64": pa.array(np.arange(N, dtype=np.int64) * -1_000_003),
        "f32": pa.array(np.arange(N, dtype=np.float32) / 3),
        "f64": pa.array(np.arange(N, dtype=np.float64) / 7),
        "lowcard": pa.array(np.arange(N, dtype=np.int64) % 5),
        "f16": pa.array(np.arange(N, dtype=np.float16) / 4),
        "dec": pa.array([decimal.Decimal(x) / 10 for x in range(N)], pa.decimal128(9, 1)),
        "ts": pa.array(np.arange(N, dtype=np.int64) * 10**9, pa.timestamp("ns")),
        "u32": pa.array(np.arange(N, dtype=np.uint32) * 2_000_000),
    })
    for codec in CODECS:
        for version in ["1.0", "2.0"]:
            w(f"pa-flat-{codec}-v{version[0]}", flat, compression=codec, data_page_version=version,
              data_page_size=1024)

    # Encodings: each column that pyarrow takes the encoding for.
    for enc in ["PLAIN", "DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY", "BYTE_STREAM_SPLIT"]:
        for version in ["1.0", "2.0"]:
            taken = [c for c in t.column_names if _takes(t, c, enc)]
            taken += [c for c in flat.column_names if c not in taken and _takes(flat, c, enc)]
            table = pa.table({c: (t if c in t.column_names else flat.slice(0, t.num_rows)).column(c) for c in taken})
            w(f"pa-enc-{enc.lower()}-v{version[0]}", table, use_dictionary=False,
              column_encoding={c: enc for c in taken}, data_page_version=version, data_page_size=1024)
    w("pa-enc-rle_dictionary-v1", t, use_dictionary=True, data_page_version="1.0", data_page_size=1024)
    w("pa-enc-rle_dictionary-v2", t, use_dictionary=True, data_page_version="2.0", data_page_size=1024)
    w("pa-enc-dict-overflow", t, use_dictionary=True, dictionary_pagesize_limit=256, data_page_size=1024)
    w("pa-enc-bool-rle-v2", t.select(["bool"]), use_dictionary=False, column_encoding={"bool": "RLE"},
      data_page_version="2.0")

    nested = nested_table()
    for version in ["1.0", "2.0"]:
        w(f"pa-nested-v{version[0]}", nested, data_page_version=version, row_group_size=250)
    w("pa-nested-legacy", nested, use_compliant_nested_type=False)
    w("pa-nested-legacy-nodict", nested, use_compliant_nested_type=False, use_dictionary=False)
    w("pa-nested-smallpages", nested, data_page_size=256, write_batch_size=16, compression="zstd")
    w("pa-nested-bss", nested.select(["l_i32", "ll_f64", "fsl_f32"]), use_dictionary=False,
      column_encoding="BYTE_STREAM_SPLIT")
    w("pa-nested-delta", nested.select(["l_l_i64", "l_l_l_str"]), use_dictionary=False,
      column_encoding={"l_l_i64": "DELTA_BINARY_PACKED", "l_l_l_str": "DELTA_BYTE_ARRAY"})

    # INT96: in the nanosecond range, and far outside it (years 1000 and 9000).
    inside = [dt.datetime(2001, 2, 3, 4, 5, 6, 789012), None, dt.datetime(1970, 1, 1), dt.datetime(1677, 9, 22)]
    outside = [dt.datetime(1000, 1, 1, 0, 0, 1), None, dt.datetime(9000, 12, 31, 23, 59, 59, 999999)]
    for unit in ["ns", "us", "ms", "s"]:
        if unit == "ns":
            table = pa.table({"t": pa.array(inside * 200, pa.timestamp("ns")),
                              "tz": pa.array(inside * 200, pa.timestamp("ns", "UTC"))})
        else:
            table = pa.table({"t": pa.array(inside * 200, pa.timestamp(unit))})
        w(f"pa-int96-{unit}", table, use_deprecated_int96_timestamps=True)
    w("pa-int96-outside", pa.table({"t": pa.array(outside * 100, pa.timestamp("us"))}),
      use_deprecated_int96_timestamps=True)
    w("pa-int96-outside-noarrowschema", pa.table({"t": pa.array(outside * 100, pa.timestamp("us"))}),
      use_deprecated_int96_timestamps=True, store_schema=False)
    w("pa-int96-noarrowschema", pa.table({"t": pa.array(inside * 200, pa.timestamp("ns"))}),
      use_deprecated_int96_timestamps=True, store_schema=False)
    w("pa-types-noarrowschema", t, store_schema=False)
    w("pa-nested-noarrowschema", nested, store_schema=False)


def _takes(table: pa.Table, name: str, enc: str) -> bool:
    """Whether pyarrow writes column `name` with encoding `enc` and reads it back (it cannot read
    a dictionary column it wrote with a DELTA byte array encoding)."""
    try:
        sink = pa.BufferOutputStream()
        pq.write_table(table.select([name]).slice(0, 20), sink, use_dictionary=False,
                       column_encoding={name: enc})
        pq.read_table(pa.BufferReader(sink.getvalue()))
        return True
    except (pa.ArrowException, OSError, ValueError, TypeError):
        return False


def write_polars(out: Path, skipped: list[str]) -> None:
    try:
        import polars as pl
    except ImportError:
        skipped.append("polars: not installed")
        return
    n = 1200
    df = pl.DataFrame({
        "i8": pl.Series([None if i % 9 == 0 else i % 100 for i in range(n)], dtype=pl.Int8),
        "i64": pl.Series(range(n), dtype=pl.Int64),
        "u32": pl.Series([i * 7 for i in range(n)], dtype=pl.UInt32),
        "f32": pl.Series([i / 3 for i in range(n)], dtype=pl.Float32),
        "f64": pl.Series([None if i % 5 == 0 else i / 7 for i in range(n)], dtype=pl.Float64),
        "b": pl.Series([i % 3 == 0 for i in range(n)]),
        "s": pl.Series([None if i % 4 == 0 else f"row {i}" for i in range(n)]),
        "cat": pl.Series([f"c{i % 6}" for i in range(n)], dtype=pl.Categorical),
        "date": pl.Series([dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(n)]),
        "dtm": pl.Series([dt.datetime(2020, 1, 1) + dt.timedelta(seconds=i * 77) for i in range(n)]),
        "dtm_tz": pl.Series([dt.datetime(2020, 1, 1) + dt.timedelta(minutes=i) for i in range(n)])
        .dt.replace_time_zone("Asia/Tokyo"),
        "dtm_ns": pl.Series([dt.datetime(2020, 1, 1) + dt.timedelta(seconds=i) for i in range(n)])
        .cast(pl.Datetime("ns")),
        "dur": pl.Series([dt.timedelta(milliseconds=i * 13) for i in range(n)]),
        "time": pl.Series([dt.time(i % 24, i % 60, i % 60) for i in range(n)]),
        "dec": pl.Series([decimal.Decimal(i) / 100 for i in range(n)], dtype=pl.Decimal(10, 2)),
        "bin": pl.Series([bytes([i % 256]) * (i % 4) for i in range(n)], dtype=pl.Binary),
        "lst": pl.Series([None if i % 11 == 0 else [i, None, i + 1][: i % 4] for i in range(n)],
                         dtype=pl.List(pl.Int32)),
        "lst_lst": pl.Series([[[i], [] if i % 2 else None] for i in range(n)], dtype=pl.List(pl.List(pl.Int64))),
        "arr": pl.Series([[float(i), float(-i)] for i in range(n)], dtype=pl.Array(pl.Float32, 2)),
        "st": pl.Series([None if i % 13 == 0 else {"x": i, "y": f"y{i % 3}"} for i in range(n)]),
        "lst_str": pl.Series([[f"a{i}", None] if i % 3 else [] for i in range(n)]),
    })
    variants: list[tuple[str, dict]] = [
        ("default", {}),
        ("nostats", {"statistics": False}),
        ("fullstats", {"statistics": "full"}),
        ("zstd-22", {"compression": "zstd", "compression_level": 22}),
        ("gzip-9", {"compression": "gzip", "compression_level": 9}),
        ("brotli-11", {"compression": "brotli", "compression_level": 11}),
        ("lz4", {"compression": "lz4"}),
        ("snappy", {"compression": "snappy"}),
        ("uncompressed", {"compression": "uncompressed"}),
        ("smallgroups", {"row_group_size": 100, "data_page_size": 512}),
        ("pyarrow", {"use_pyarrow": True}),
        ("pyarrow-opts", {"use_pyarrow": True, "pyarrow_options": {"data_page_version": "2.0"}}),
    ]
    for name, kw in variants:
        try:
            df.write_parquet(out / f"polars-{name}.parquet", **kw)
        except Exception as e:  # noqa: BLE001 - any refusal of an option is reported, not fatal
            skipped.append(f"polars-{name}: {e}")
            (out / f"polars-{name}.parquet").unlink(missing_ok=True)


def write_duckdb(out: Path, skipped: list[str]) -> None:
    try:
        import duckdb
    except ImportError:
        skipped.append("duckdb: not installed")
        return
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    query = """
        SELECT i::INTEGER AS i32, (i * 1000003)::BIGINT AS i64, (i % 100)::TINYINT AS i8,
               (i % 60000)::USMALLINT AS u16, (i * 3)::UBIGINT AS u64, (i::HUGEINT * 12345678901234567) AS huge,
               CASE WHEN i % 7 = 3 THEN NULL ELSE i / 3.0 END::DOUBLE AS f64, (i / 3)::FLOAT AS f32,
               ((i % 7999) * 0.01)::DECIMAL(4, 2) AS dec4, (i * 1.001)::DECIMAL(9, 3) AS dec9,
               (i * 1234567.891)::DECIMAL(18, 3) AS dec18, (i * 123456789.123456789)::DECIMAL(38, 9) AS dec38,
               CASE WHEN i % 5 = 0 THEN NULL ELSE 'v' || i END AS s, ('b' || (i % 7))::BLOB AS blob,
               DATE '2020-01-01' + i::INTEGER AS d, TIME '00:00:00' + INTERVAL (i) SECOND AS t,
               TIMESTAMP '2020-01-01' + INTERVAL (i) MINUTE AS ts,
               TIMESTAMPTZ '2020-01-01 00:00:00+00' + INTERVAL (i) MINUTE AS tstz,
               (TIMESTAMP '2020-01-01' + INTERVAL (i) SECOND)::TIMESTAMP_NS AS ts_ns,
               (TIMESTAMP '2020-01-01' + INTERVAL (i) SECOND)::TIMESTAMP_MS AS ts_ms,
               (TIMESTAMP '2020-01-01' + INTERVAL (i) SECOND)::TIMESTAMP_S AS ts_s,
               i % 2 = 0 AS b,
               CASE WHEN i % 9 = 0 THEN NULL ELSE [i, NULL, i + 1] END AS lst,
               [[i], [], NULL] AS lst_lst,
               CASE WHEN i % 4 = 0 THEN NULL ELSE {'a': i, 'b': 's' || i, 'c': [i * 0.5]} END AS st,
               MAP {'k' || (i % 3): i} AS m,
               [{'x': i::SMALLINT}, NULL] AS lst_st,
               ('c' || (i % 4))::ENUM_T AS e,
               uuid_extract_version('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID)::INTEGER AS uv,
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID AS uid,
               [1.5, 2.5]::FLOAT[2] AS arr
        FROM range(1000) r(i)
    """
    try:
        con.execute("CREATE TYPE ENUM_T AS ENUM ('c0', 'c1', 'c2', 'c3')")
        con.execute(f"CREATE TABLE t AS {query}")
    except Exception as e:  # noqa: BLE001
        skipped.append(f"duckdb table: {e}")
        return
    variants = {
        "default": "",
        "zstd": ", COMPRESSION zstd",
        "gzip": ", COMPRESSION gzip",
        "uncompressed": ", COMPRESSION uncompressed",
        "lz4": ", COMPRESSION lz4_raw",
        "brotli": ", COMPRESSION brotli",
        "smallgroups": ", ROW_GROUP_SIZE 128",
        "v2": ", PARQUET_VERSION v2",
    }
    for name, opts in variants.items():
        path = out / f"duckdb-{name}.parquet"
        try:
            con.execute(f"COPY t TO '{path}' (FORMAT parquet{opts})")
        except Exception as e:  # noqa: BLE001
            skipped.append(f"duckdb-{name}: {e}")
            path.unlink(missing_ok=True)


def write_fastparquet(out: Path, skipped: list[str]) -> None:
    try:
        import fastparquet
        import pandas as pd
    except ImportError:
        skipped.append("fastparquet: not installed")
        return
    n = 800
    df = pd.DataFrame({
        "i64": np.arange(n, dtype=np.int64),
        "i32": np.arange(n, dtype=np.int32) * -3,
        "u8": (np.arange(n) % 256).astype(np.uint8),
        "f32": np.arange(n, dtype=np.float32) / 3,
        "f64": np.where(np.arange(n) % 6 == 0, np.nan, np.arange(n) / 7.0),
        "b": np.arange(n) % 2 == 0,
        "obj_s": pd.Series([None if i % 5 == 0 else f"o{i % 17}" for i in range(n)], dtype=object),
        "obj_b": pd.Series([None if i % 4 == 0 else bytes([i % 256]) for i in range(n)], dtype=object),
        "ts": pd.date_range("2020-01-01", periods=n, freq="37min"),
        "ts_tz": pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC"),
        "cat": pd.Categorical([f"k{i % 3}" for i in range(n)]),
        "nint": pd.array([None if i % 3 == 0 else i for i in range(n)], dtype="Int32"),
    })
    variants: list[tuple[str, dict]] = [
        ("default", {}),
        ("int96", {"times": "int96"}),
        ("snappy", {"compression": "SNAPPY"}),
        ("gzip", {"compression": "GZIP"}),
        ("zstd", {"compression": "ZSTD"}),
        ("rowgroups", {"row_group_offsets": 200}),
        ("nostats", {"stats": False}),
        ("nonulls", {"has_nulls": False}),
        ("dict-strings", {"object_encoding": {"obj_s": "utf8", "obj_b": "bytes"}, "has_nulls": True}),
    ]
    for name, kw in variants:
        path = out / f"fastparquet-{name}.parquet"
        frame = df.drop(columns=["obj_s", "obj_b", "nint", "f64"]) if name == "nonulls" else df
        try:
            fastparquet.write(str(path), frame, **kw)
        except Exception as e:  # noqa: BLE001
            skipped.append(f"fastparquet-{name}: {e}")
            path.unlink(missing_ok=True)


def main(out: Path) -> list[str]:
    """Writes the corpus into `out`; returns what was skipped, one line each."""
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    write_pyarrow(out, skipped)
    write_polars(out, skipped)
    write_duckdb(out, skipped)
    write_fastparquet(out, skipped)
    return skipped


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for line in main(Path(sys.argv[1])):
        print("skipped:", line)
    print(f"{len(list(Path(sys.argv[1]).glob('*.parquet')))} files in {sys.argv[1]}")
