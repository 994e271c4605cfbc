"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Small valid inputs, one per feature worth reaching (encodings, compressions, dtypes, image
kinds), so that libFuzzer starts from files the readers accept instead of from nothing. Run it
with the project's Python (pyarrow, numpy, Pillow):

    /work/main/.venv/bin/python fuzz/make_seeds.py

The output is deterministic for the same library versions; each seed stays under 8 KB.
"""

from __future__ import annotations

import datetime
import decimal
import gzip
import io
import json
import struct
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from PIL import Image

CORPUS = Path(__file__).resolve().parent / "corpus"
MAX_SEED_BYTES = 8 * 1024


def write(target: str, name: str, data: bytes) -> None:
    """Writes one seed, refusing one over the size budget."""
    if len(data) > MAX_SEED_BYTES:
        raise SystemExit(f"seed {target}/{name} is {len(data)} bytes (> {MAX_SEED_BYTES})")
    out = CORPUS / target
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(data)


def table(rows: int = 20) -> pa.Table:
    """A table of the column types the engine collates: numbers, bools, strings, nulls."""
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "x": pa.array([i / 8 for i in range(rows)], pa.float64()),
            "small": pa.array([i % 7 for i in range(rows)], pa.int8()),
            "flag": pa.array([i % 3 == 0 for i in range(rows)]),
            "name": pa.array([None if i % 5 == 0 else f"n{i % 4}" for i in range(rows)]),
        }
    )


def nested_table(rows: int = 8) -> pa.Table:
    """Lists, fixed-size lists, timestamps, dates and decimals."""
    return pa.table(
        {
            "vec": pa.array([[i, i + 1, i + 2] for i in range(rows)], pa.list_(pa.float32(), 3)),
            "ragged": pa.array([list(range(i % 3)) for i in range(rows)], pa.list_(pa.int32())),
            "ts": pa.array(
                [datetime.datetime(2024, 1, 1) + datetime.timedelta(hours=i) for i in range(rows)],
                pa.timestamp("us"),
            ),
            "day": pa.array([datetime.date(2024, 1, 1 + i) for i in range(rows)], pa.date32()),
            "price": pa.array(
                [decimal.Decimal(i * 125) / 100 for i in range(rows)], pa.decimal128(12, 2)
            ),
            "blob": pa.array([bytes([i]) * (i % 4) for i in range(rows)], pa.binary()),
        }
    )


def parquet_seeds() -> None:
    """Plain, dictionary, each codec, data page v2, several row groups, nested columns."""
    cases = {
        "plain_snappy": dict(compression="snappy", use_dictionary=False),
        "dict_zstd": dict(compression="zstd", use_dictionary=True),
        "lz4": dict(compression="lz4"),
        "gzip": dict(compression="gzip"),
        "uncompressed_v2": dict(compression="none", data_page_version="2.0"),
        "no_stats": dict(compression="none", write_statistics=False),
    }
    for name, kwargs in cases.items():
        sink = io.BytesIO()
        pq.write_table(table(), sink, row_group_size=8, **kwargs)
        write("parquet", f"{name}.parquet", sink.getvalue())
    sink = io.BytesIO()
    pq.write_table(nested_table(), sink, row_group_size=4, compression="none")
    write("parquet", "nested.parquet", sink.getvalue())


def ipc_seeds() -> None:
    """Files and streams: two batches, a dictionary column, nested types, zstd bodies."""
    dictionary = pa.table(
        {"label": pa.array(["cat", "dog", "cat", None, "eel"]).dictionary_encode()}
    )
    cases = {
        "two_batches": (table(), {}),
        "dictionary": (dictionary, {}),
        "nested": (nested_table(), {}),
        "zstd": (table(), {"compression": "zstd"}),
    }
    for name, (tbl, kwargs) in cases.items():
        options = ipc.IpcWriteOptions(**kwargs)
        for target, opener in (("ipc_file", ipc.new_file), ("ipc_stream", ipc.new_stream)):
            sink = io.BytesIO()
            with opener(sink, tbl.schema, options=options) as writer:
                for batch in tbl.to_batches(max_chunksize=max(1, tbl.num_rows // 2)):
                    writer.write_batch(batch)
            ext = "arrow" if target == "ipc_file" else "arrows"
            write(target, f"{name}.{ext}", sink.getvalue())


def csv_seeds() -> None:
    """Inferred types, quoting, embedded newlines, empty fields, decimals and timestamps."""
    sink = io.BytesIO()
    pacsv.write_csv(table(), sink)
    write("csv", "typed.csv", sink.getvalue())
    write(
        "csv",
        "quoted.csv",
        b'id,text,score\n1,"a, b",0.5\n2,"line\nbreak",1.25\n3,"say ""hi""",\n4,,-3\n',
    )
    write(
        "csv",
        "dates.csv",
        b"day,ts,ok\n2024-01-01,2024-01-01T10:00:00,true\n2024-02-29,2024-02-29T23:59:59.5,false\n",
    )
    write("csv", "decimals.csv", b"price,qty\n12.50,3\n-0.01,4\n1e3,5\n99999999.99,6\n")
    write("csv", "crlf.csv", b"a,b\r\n1,x\r\n2,y\r\n3,z\r\n")
    rows = "".join(f"{i},{i * 0.5},{'abc'[i % 3]}\n" for i in range(60))
    write("csv", "many_units.csv", ("i,f,s\n" + rows).encode())


def npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    """The `.npy` serialisation of `array` (numpy's own writer)."""
    sink = io.BytesIO()
    np.lib.format.write_array(sink, array, version=version, allow_pickle=False)
    return sink.getvalue()


def image_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    """`img` encoded as `fmt` by Pillow."""
    sink = io.BytesIO()
    img.save(sink, format=fmt, **kwargs)
    return sink.getvalue()


def gradient(mode: str, size: tuple[int, int] = (8, 8)) -> Image.Image:
    """A small deterministic RGB gradient converted to `mode`."""
    w, h = size
    rgb = Image.new("RGB", size)
    rgb.putdata(
        [((x * 32) % 256, (y * 32) % 256, ((x + y) * 16) % 256) for y in range(h) for x in range(w)]
    )
    return rgb.convert(mode)


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A plain tar holding `members` in order, ending in the two zero blocks of the format but
    without `tarfile`'s padding to 10 KiB records (which would make every seed 10 KiB)."""
    out = bytearray()
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        out += info.tobuf(format=tarfile.USTAR_FORMAT)
        out += data + bytes(-len(data) % 512)
    return bytes(out + bytes(1024))


def tar_seeds() -> None:
    """Shards with class, text, JSON, npy, image and raw fields; one gzip-compressed."""
    png = image_bytes(gradient("RGB"), "PNG")
    jpg = image_bytes(gradient("RGB"), "JPEG", quality=80)
    basic = []
    extra = []
    for i in range(2):
        key = f"s{i:03d}"
        basic += [
            (f"{key}.cls", str(i).encode()),
            (f"{key}.txt", f"caption {i}".encode()),
            (f"{key}.npy", npy_bytes(np.arange(4, dtype=np.float32) + i)),
        ]
        extra += [
            (f"{key}.json", json.dumps({"i": i}).encode()),
            (f"{key}.bin", bytes([i]) * 5),
        ]
    write("tar", "basic.tar", tar_bytes(basic))
    write("tar", "json_bin.tar", tar_bytes(extra))
    write("tar", "images.tar", tar_bytes([(f"k{i}.jpg", jpg) for i in range(2)] + [("p.png", png)]))
    write("tar", "mixed_images.tar", tar_bytes([("a.jpg", jpg), ("b.jpg", png)]))
    write("tar", "nested_keys.tar", tar_bytes([("train/a.seg.png", png), ("train/a.cls", b"1")]))
    write("tar", "basic.tar.gz", gzip.compress(tar_bytes(basic + extra), mtime=0))


def npy_seeds() -> None:
    """Each supported dtype, scalar to 3-d shapes, header versions 1 to 3."""
    arrays = {
        "f4_2x3": np.arange(6, dtype="<f4").reshape(2, 3),
        "f8_vec": np.linspace(0, 1, 5, dtype="<f8"),
        "u1_5": np.arange(5, dtype="u1"),
        "i8_scalar": np.array(7, dtype="<i8"),
        "b1_2x2": np.array([[True, False], [False, True]]),
        "i2_2x2x2": np.arange(8, dtype="<i2").reshape(2, 2, 2),
        "u4_3": np.array([1, 2, 3], dtype="<u4"),
        "i1_empty": np.zeros((0, 3), dtype="i1"),
    }
    for name, array in arrays.items():
        write("npy", f"{name}.npy", npy_bytes(array))
    write("npy", "v2_f4.npy", npy_bytes(np.ones(3, dtype="<f4"), version=(2, 0)))
    write("npy", "v3_u2.npy", npy_bytes(np.ones(3, dtype="<u2"), version=(3, 0)))


def image_seeds() -> None:
    """The first byte is the target size (height 1 + low nibble, width 1 + high nibble)."""
    exact = 0x77  # 8x8: the image is already at the target size, decoded in place.
    smaller = 0x33  # 4x4: crop and resize.
    wide = 0x1F  # 16 high, 2 wide: a strong crop.
    cases = [
        ("jpeg_rgb", exact, image_bytes(gradient("RGB"), "JPEG", quality=80)),
        ("jpeg_rgb_resize", smaller, image_bytes(gradient("RGB", (12, 10)), "JPEG")),
        ("jpeg_gray", exact, image_bytes(gradient("L"), "JPEG")),
        ("jpeg_cmyk", smaller, image_bytes(gradient("CMYK"), "JPEG")),
        ("jpeg_progressive", wide, image_bytes(gradient("RGB"), "JPEG", progressive=True)),
        ("jpeg_subsampled", exact, image_bytes(gradient("RGB", (16, 16)), "JPEG", subsampling=2)),
        ("png_rgb", exact, image_bytes(gradient("RGB"), "PNG")),
        ("png_rgba", smaller, image_bytes(gradient("RGBA"), "PNG")),
        ("png_palette", wide, image_bytes(gradient("P"), "PNG")),
        ("png_gray16", smaller, image_bytes(gradient("I;16"), "PNG")),
        ("png_interlaced", exact, image_bytes(gradient("RGB"), "PNG", interlace=1)),
        ("webp_lossy", exact, image_bytes(gradient("RGB"), "WEBP", quality=80)),
        ("webp_lossless", smaller, image_bytes(gradient("RGBA"), "WEBP", lossless=True)),
    ]
    for name, size, data in cases:
        write("image", f"{name}.bin", bytes([size]) + data)


def job_spec_seeds() -> None:
    """A memory string, a NUL, then bytes the harness turns into a JobSpec and numbers."""
    tail = bytes(range(1, 64))
    for i, memory in enumerate([b"512MB", b"1.5GiB", b"8GB", b"0MB", b"1.5B", b"9999999PiB"]):
        write("job_spec", f"memory_{i}.bin", memory + b"\0" + tail)
    spec = struct.pack("<B", 1) + b"train\0" + b"echo hi\0/tmp\0"
    write("job_spec", "spec.bin", b"4GiB\0" + spec + tail)


def main() -> None:
    parquet_seeds()
    ipc_seeds()
    csv_seeds()
    tar_seeds()
    npy_seeds()
    image_seeds()
    job_spec_seeds()
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    count = sum(1 for p in CORPUS.rglob("*") if p.is_file())
    print(f"{count} seeds, {total} bytes under {CORPUS}")


if __name__ == "__main__":
    main()
