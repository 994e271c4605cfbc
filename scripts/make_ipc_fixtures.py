"""Writes the Arrow IPC fixtures of crates/zenith-core/tests/data/ipc/ with pyarrow: files and
streams as real-world writers leave them (compressed bodies, pre-0.15 stream framing, schema-only
streams, dictionary deltas and replacements). The Rust tests read them and compare with the values
below. The big-endian fixture is not made here (pyarrow cannot write one): the Rust test
`big_endian_file_is_swapped_to_native` builds it and checks it against the file.

Run from the repository root: python scripts/make_ipc_fixtures.py
"""

from __future__ import annotations

import decimal
from pathlib import Path

import pyarrow as pa
from pyarrow import feather, ipc

OUT = Path(__file__).resolve().parents[1] / "crates" / "zenith-core" / "tests" / "data" / "ipc"


def table() -> pa.Table:
    """40 rows: `id` int64 0..39, `x` = id * 0.25 (null every 7th), `s` "s{id % 5}" (null every
    9th), `d` decimal128(9, 2) = id + 0.01 * id."""
    n = 40
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "x": pa.array([None if i % 7 == 0 else i * 0.25 for i in range(n)], pa.float64()),
            "s": pa.array([None if i % 9 == 0 else f"s{i % 5}" for i in range(n)], pa.string()),
            "d": pa.array([decimal.Decimal(i) + decimal.Decimal(i) / 100 for i in range(n)], pa.decimal128(9, 2)),
        }
    )


def write_stream(path: Path, batches: list[pa.RecordBatch], **options: object) -> None:
    with ipc.new_stream(path, batches[0].schema, options=ipc.IpcWriteOptions(**options)) as w:
        for b in batches:
            w.write_batch(b)


def dictionary_batches() -> list[pa.RecordBatch]:
    """Three batches of a dictionary column whose dictionary grows: ["a", "b"], then "c", then "d"."""
    schema = pa.schema([("k", pa.dictionary(pa.int32(), pa.string())), ("v", pa.int32())])
    words = ["a", "b", "c", "d"]

    def batch(keys: list[int], size: int) -> pa.RecordBatch:
        k = pa.DictionaryArray.from_arrays(pa.array(keys, pa.int32()), pa.array(words[:size]))
        return pa.record_batch([k, pa.array(range(len(keys)), pa.int32())], schema=schema)

    return [batch([0, 1, 1], 2), batch([2, 0], 3), batch([3, 3, 1, 2], 4)]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    t = table()
    batches = t.to_batches(max_chunksize=16)
    feather.write_feather(t, OUT / "lz4.feather", chunksize=16)  # pyarrow's default: lz4
    with ipc.new_file(OUT / "zstd.arrow", t.schema, options=ipc.IpcWriteOptions(compression="zstd")) as w:
        for b in batches:
            w.write_batch(b)
    write_stream(OUT / "lz4.arrows", batches, compression="lz4")
    write_stream(OUT / "zstd.stream", batches, compression="zstd")
    write_stream(OUT / "legacy.stream", batches, use_legacy_format=True)
    with ipc.new_stream(OUT / "empty.arrows", t.schema):
        pass
    write_stream(OUT / "dict-delta.arrows", dictionary_batches(), emit_dictionary_deltas=True)
    # Without deltas a stream replaces the whole dictionary each time it grows.
    write_stream(OUT / "dict-replace.arrows", dictionary_batches())


if __name__ == "__main__":
    main()
