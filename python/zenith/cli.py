"""The ``zenith`` command line.

Exit codes (stable, for scripts): 0 success; 1 the operation failed (unknown job id, job failed or
was cancelled for ``wait``, job already finished for ``cancel``, backend error); 2 bad usage or
invalid input (the Validator's message names the field and rule).

Each subcommand is one ``add_*`` function registering its parser and handler: the job commands,
``zenith info [PATH]``, ``zenith inspect PATH``, ``zenith head PATH``, ``zenith convert SRC DST``
and ``zenith bench PATH`` (a loader run naming its
bottleneck).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from zenith import _layout
from zenith._zenith import (
    FormatError,
    JobError,
    JobInfo,
    SchemaError,
    SourceError,
    StorageError,
    ValidationError,
)
from zenith.jobs import (
    FINAL_STATES,
    cancel,
    get,
    home,
    job_dir,
    make_options,
    status,
    submit_with,
    wait,
)
from zenith.jobs import jobs as list_jobs

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _duration(info: JobInfo) -> str:
    if info.started_at is None:
        return "-"
    end = info.finished_at if info.finished_at is not None else time.time()
    seconds = max(0.0, end - info.started_at)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _memory(info: JobInfo) -> str:
    if info.memory is None:
        return "-"
    value = float(info.memory)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{info.memory}B"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- jobs


def _cmd_jobs(args: argparse.Namespace) -> int:
    if args.action == "serve":
        from zenith import _runner

        idle = -1.0 if args.idle_timeout is None else args.idle_timeout
        return _runner.main(["--home", str(home()), "--idle-timeout", str(idle)])
    infos = list_jobs(state=args.state)
    header = ["ID", "NAME", "STATE", "BACKEND", "GPUS", "MEM", "CPUS", "PRIO", "SUBMITTED", "RUNTIME", "EXIT"]
    rows = [
        [
            str(j.id),
            j.name,
            j.state,
            j.backend + (f":{j.backend_id}" if j.backend_id else ""),
            str(j.gpus),
            _memory(j),
            str(j.cpus),
            str(j.priority),
            _when(j.submitted_at),
            _duration(j),
            "-" if j.exit_code is None else str(j.exit_code),
        ]
        for j in infos
    ]
    print(table(rows, header))
    return EXIT_OK


def add_jobs(sub: argparse._SubParsersAction) -> None:
    """``zenith jobs [--state S]`` lists jobs; ``zenith jobs serve`` runs the local runner."""
    p = sub.add_parser("jobs", help="list jobs, or `jobs serve` to run the local executor")
    p.add_argument("action", nargs="?", choices=["list", "serve"], default="list")
    p.add_argument("--state", choices=["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"])
    p.add_argument(
        "--idle-timeout", type=float, default=None, help="serve: exit after this many idle seconds"
    )
    p.set_defaults(handler=_cmd_jobs)


# ---------------------------------------------------------------------------------- submit


def _cmd_submit(args: argparse.Namespace) -> int:
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("zenith submit: give the command after --, e.g. zenith submit -- echo hi", file=sys.stderr)
        return EXIT_USAGE
    options = make_options(
        gpus=args.gpus,
        memory=args.memory,
        cpus=args.cpus,
        name=args.name,
        priority=args.priority,
        backend=args.backend,
    )
    print(submit_with(options, argv))
    return EXIT_OK


def add_submit(sub: argparse._SubParsersAction) -> None:
    """``zenith submit [options] -- CMD ARGS``: prints the job id."""
    p = sub.add_parser("submit", help="submit a command: zenith submit [options] -- CMD ARGS")
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--memory", default=None, help='e.g. "512MB", "8GB", "1.5GiB"')
    p.add_argument("--cpus", type=int, default=None)
    p.add_argument("--name", default=None)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--backend", choices=["local", "slurm"], default=None)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(handler=_cmd_submit)


# ---------------------------------------------------------------------------------- status / wait


def _cmd_status(args: argparse.Namespace) -> int:
    j = get(args.id)
    fields = [
        ("id", str(j.id)),
        ("name", j.name),
        ("state", j.state),
        ("kind", j.kind),
        ("command", " ".join(j.argv) if j.kind == "command" else f"python function ({j.argv[1]})"),
        ("backend", j.backend + (f" (Slurm job {j.backend_id})" if j.backend_id else "")),
        ("resources", f"gpus={j.gpus} memory={_memory(j)} cpus={j.cpus} priority={j.priority}"),
        ("gpu ids", ",".join(map(str, j.gpu_ids)) or "-"),
        ("submitted", _when(j.submitted_at)),
        ("started", _when(j.started_at)),
        ("finished", _when(j.finished_at)),
        ("runtime", _duration(j)),
        ("exit code", "-" if j.exit_code is None else str(j.exit_code)),
        ("job dir", str(job_dir(j.id))),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")
    if j.error:
        print(f"{'error'.ljust(width)}  " + j.error.replace("\n", "\n" + " " * (width + 2)))
    return EXIT_OK


def add_status(sub: argparse._SubParsersAction) -> None:
    """``zenith status ID``: the job's details."""
    p = sub.add_parser("status", help="show one job")
    p.add_argument("id", type=int)
    p.set_defaults(handler=_cmd_status)


def _cmd_wait(args: argparse.Namespace) -> int:
    try:
        state = wait(args.id, timeout=args.timeout)
    except TimeoutError as exc:
        print(f"zenith: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(state)
    return EXIT_OK if state == "SUCCEEDED" else EXIT_FAILED


def add_wait(sub: argparse._SubParsersAction) -> None:
    """``zenith wait ID``: exits 0 if the job succeeded, 1 otherwise."""
    p = sub.add_parser("wait", help="wait for a job; exit 0 only if it succeeded")
    p.add_argument("id", type=int)
    p.add_argument("--timeout", type=float, default=None)
    p.set_defaults(handler=_cmd_wait)


# ---------------------------------------------------------------------------------- logs / cancel


def _cmd_logs(args: argparse.Namespace) -> int:
    info = get(args.id)
    directory = job_dir(info.id)
    streams = [("stdout", sys.stdout), ("stderr", sys.stderr)]
    offsets = {name: 0 for name, _ in streams}

    def pump() -> None:
        for name, out in streams:
            try:
                with open(_layout.log_path(directory, name), "rb") as f:
                    f.seek(offsets[name])
                    data = f.read()
            except FileNotFoundError:
                continue
            offsets[name] += len(data)
            if data:
                out.write(data.decode(errors="replace"))
                out.flush()

    pump()
    while args.follow and status(info.id) not in FINAL_STATES:
        time.sleep(0.25)
        pump()
    if args.follow:
        pump()
    return EXIT_OK


def add_logs(sub: argparse._SubParsersAction) -> None:
    """``zenith logs ID [-f]``: the job's stdout (to stdout) and stderr (to stderr)."""
    p = sub.add_parser("logs", help="print a job's output; -f follows until it finishes")
    p.add_argument("id", type=int)
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(handler=_cmd_logs)


def _cmd_cancel(args: argparse.Namespace) -> int:
    before = get(args.id).state
    if before in FINAL_STATES:
        print(f"zenith: job {args.id} already finished ({before})", file=sys.stderr)
        return EXIT_FAILED
    state = cancel(args.id)
    print(state)
    return EXIT_OK if state == "CANCELLED" else EXIT_FAILED


def add_cancel(sub: argparse._SubParsersAction) -> None:
    """``zenith cancel ID``: cancels a queued or running job."""
    p = sub.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("id", type=int)
    p.set_defaults(handler=_cmd_cancel)


def _cmd_info(args: argparse.Namespace) -> int:
    import zenith

    zenith.info(args.path if args.path else None, format=args.format)
    return EXIT_OK


def add_info(sub: argparse._SubParsersAction) -> None:
    """``zenith info [PATH]``: build facts, or a dataset's schema, rows, files and units."""
    p = sub.add_parser("info", help="build facts, or a dataset's schema, rows, files and units")
    p.add_argument("path", nargs="*", help="file, directory or glob (several allowed)")
    p.add_argument("--format", default=None, help="parquet, csv, arrow or arrows (default: detect)")
    p.set_defaults(handler=_cmd_info)


def _data_command(
    sub: argparse._SubParsersAction, name: str, summary: str, description: str, example: str,
    *, columns: bool = True, path: str = "path",
) -> argparse.ArgumentParser:
    """A data subcommand's parser: its help with an example, the source paths, ``--format``
    and (with ``columns``) ``--columns``."""
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=description, epilog=f"example: {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(path, nargs="+", help="file, directory, glob or URL (several allowed)")
    p.add_argument("--format", default=None, help="format of the source (default: detect)")
    if columns:
        p.add_argument("--columns", default=None, help="comma-separated columns (default: all)")
    return p


def _source(paths: list[str]) -> str | list[str]:
    """One path as it is, several as a list."""
    return paths if len(paths) > 1 else paths[0]


def _columns(args: argparse.Namespace) -> list[str] | None:
    return [c for c in args.columns.split(",") if c] if args.columns else None


#: Files ``zenith inspect`` lists before it summarises the rest.
_FILES_SHOWN = 20


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    import zenith

    source = _source(args.path)
    info = zenith.info(source, format=args.format, verbose=False)
    stats = info.get("statistics") or {}
    storage = info.get("storage") or {}
    columns = []
    for name in dict.fromkeys([*storage, *stats]):
        c: dict[str, Any] = {"column": name}
        c.update(storage.get(name, {}))
        c.update(stats.get(name, {}))
        columns.append(c)
    units = sum(f["units"] for f in info["files"])
    report = {
        "path": args.path,
        "format": info["format"],
        "rows": info["rows"],
        "files": len(info["files"]),
        "units": units,
        "bytes": info["bytes"],
        "uncompressed_bytes": (
            sum(int(c["uncompressed_bytes"]) for c in storage.values()) if storage else None
        ),
        "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in info["schema"]],
        "columns": columns,
        "file_list": info["files"],
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return EXIT_OK
    one, unit = {
        "parquet": ("row group", "row groups"),
        "arrow": ("record batch", "record batches"),
        "arrows": ("record batch", "record batches"),
    }.get(info["format"], ("unit", "units"))
    print(f"{' '.join(args.path)}: {info['format']}, {info['rows']:,} rows in "
          f"{len(info['files']):,} file{'s' if len(info['files']) != 1 else ''}, "
          f"{units:,} {one if units == 1 else unit}")
    sizes = f"  on disk {_size(info['bytes'])}"
    if report["uncompressed_bytes"] is not None:
        sizes += f"; pages before compression {_size(float(report['uncompressed_bytes']))}"
    print(sizes)
    print("schema:")
    for f in info["schema"]:
        print(f"  {f.name}: {f.type}{'' if f.nullable else ' not null'}")
    if columns:
        print("columns:")
        rows = []
        for c in columns:
            rows.append([
                str(c["column"]),
                ", ".join(c.get("compression", [])) or "-",
                _size(float(c["compressed_bytes"])) if "compressed_bytes" in c else "-",
                _size(float(c["uncompressed_bytes"])) if "uncompressed_bytes" in c else "-",
                _cell(c.get("min")) if "min" in c else "-",
                _cell(c.get("max")) if "max" in c else "-",
                "?" if c.get("null_count") is None else f"{c['null_count']:,}",
            ])
        header = ["column", "compression", "on disk", "uncompressed", "min", "max", "nulls"]
        print("\n".join("  " + line for line in table(rows, header).splitlines()))
    print("files:")
    rows = [[f["path"], f"{f['rows']:,}", f"{f['units']:,}", _size(f["bytes"])]
            for f in info["files"][:_FILES_SHOWN]]
    print("\n".join("  " + line for line in table(rows, ["path", "rows", unit, "bytes"]).splitlines()))
    if len(info["files"]) > _FILES_SHOWN:
        print(f"  ... and {len(info['files']) - _FILES_SHOWN:,} more files")
    return EXIT_OK


def add_inspect(sub: argparse._SubParsersAction) -> None:
    """``zenith inspect PATH``: format, schema, rows, files, units, sizes, codecs, statistics."""
    p = _data_command(
        sub, "inspect",
        "describe a dataset: format, schema, rows, files, units, sizes, codecs, statistics",
        "Reads the footers and headers of PATH (no data pages) and prints its format, schema, "
        "rows, files and units, the bytes on disk and (Parquet) before compression, each "
        "column's codecs, min, max and nulls over all row groups; --json for scripts.",
        "zenith inspect s3://bucket/train/ --json",
        columns=False,
    )
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(handler=_cmd_inspect)


#: Seconds between the plain progress lines of ``zenith convert`` when stderr is no terminal.
_PROGRESS_EVERY = 5.0


class _Progress:
    """Rows done out of ``total``: a tqdm bar on a terminal, plain periodic lines otherwise."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.done = total, what, 0
        self.start = self.last = time.perf_counter()
        self.bar: Any = None
        if sys.stderr.isatty():
            from zenith._progress import rows_bar

            self.bar = rows_bar(what, total)

    def update(self, rows: int) -> None:
        self.done += rows
        if self.bar is not None:
            self.bar.update(rows)
            return
        now = time.perf_counter()
        if now - self.last >= _PROGRESS_EVERY:
            self.last = now
            rate = self.done / (now - self.start)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"zenith: {self.what}: {self.done:,}/{self.total:,} rows, {rate:,.0f} rows/s, "
                  f"about {eta:.0f} s left", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


#: The codecs ``zenith convert --compression`` takes per output format.
_CODECS = {
    "parquet": ["snappy", "zstd", "gzip", "lz4", "brotli", "none"],
    "ipc": ["zstd", "lz4"],
    "csv": [],
    "webdataset": [],
}


def _writer(to: str, path: str, schema: Any, args: argparse.Namespace) -> Any:
    """A pyarrow writer of ``to`` into ``path`` with ``write_batch`` and ``close``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if to == "parquet":
        return pq.ParquetWriter(path, schema, compression=args.compression or "snappy")
    if to == "csv":
        return pacsv.CSVWriter(path, schema)
    options = pa.ipc.IpcWriteOptions(compression=args.compression) if args.compression else None
    return pa.ipc.new_file(path, schema, options=options)


def _cmd_convert(args: argparse.Namespace) -> int:
    import zenith

    if args.row_group_size < 1:
        raise ValidationError("invalid argument `--row-group-size`: must be at least 1")
    codecs = _CODECS[args.to]
    if args.compression is not None and args.compression not in codecs:
        raise ValidationError(
            f"invalid argument `--compression`: {args.compression!r} for {args.to}; "
            + (f"expected one of {', '.join(codecs)}" if codecs else f"{args.to} is written uncompressed")
        )
    if args.to != "webdataset" and os.path.exists(args.dst) and not args.overwrite:
        raise ValidationError(
            f"invalid argument `DST`: {args.dst} exists; pass --overwrite to replace it"
        )
    if args.shard_size < 1:
        raise ValidationError("invalid argument `--shard-size`: must be at least 1")
    source, columns = _source(args.src), _columns(args)
    total = zenith.info(source, format=args.format, verbose=False)["rows"]
    # File order, one row group per batch, a window of one batch: memory stays a few batches
    # whatever the size of the data.
    dl = zenith.DataLoader(
        source,
        batch_size=args.row_group_size,
        shuffle=False,
        columns=columns,
        output="arrow",
        format=args.format,
        shuffle_window=args.row_group_size,
    )
    if args.to == "webdataset":
        return _convert_to_webdataset(dl, total, args)
    folder = os.path.dirname(os.path.abspath(args.dst))
    tmp = os.path.join(folder, f".{os.path.basename(args.dst)}.{os.getpid()}.partial")
    progress = _Progress(total, f"convert to {args.to}")
    writer = None
    start = time.perf_counter()
    try:
        for batch in dl:
            if writer is None:
                writer = _writer(args.to, tmp, batch.schema, args)
            if args.to == "parquet":
                writer.write_batch(batch, row_group_size=args.row_group_size)
            else:
                writer.write_batch(batch)
            progress.update(batch.num_rows)
        if writer is None:
            import pyarrow as pa

            writer = _writer(args.to, tmp, pa.schema([]), args)
        writer.close()
        writer = None
        os.replace(tmp, args.dst)
    finally:
        progress.close()
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"zenith: wrote {progress.done:,} rows to {args.dst} ({args.to}) in "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    return EXIT_OK


def _convert_to_webdataset(dl: Any, total: int, args: argparse.Namespace) -> int:
    """Writes the rows of ``dl`` as tar shards of ``--shard-size`` samples at the pattern (or
    into the folder) ``args.dst``: all of them into a hidden folder first, moved into place when
    every shard is complete."""
    import shutil

    from zenith._webdataset import _rows, write_webdataset

    pattern = args.dst if ("%" in args.dst or "{" in args.dst) else os.path.join(args.dst, "shard-%06d.tar")
    folder = os.path.dirname(os.path.abspath(pattern))
    first = pattern % 0 if "%" in pattern else pattern.format(0)
    if os.path.exists(first) and not args.overwrite:
        raise ValidationError(
            f"invalid argument `DST`: {first} exists; pass --overwrite to replace the shards"
        )
    tmp = os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}.{os.getpid()}.partial")
    progress = _Progress(total, "convert to webdataset")
    start = time.perf_counter()

    def rows() -> Any:
        for batch in dl:
            yield from _rows(batch)
            progress.update(batch.num_rows)

    try:
        shards = write_webdataset(
            rows(), os.path.join(tmp, os.path.basename(pattern)), maxcount=args.shard_size
        )
        os.makedirs(folder, exist_ok=True)
        for shard in shards:
            os.replace(shard, os.path.join(folder, os.path.basename(shard)))
    finally:
        progress.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"zenith: wrote {progress.done:,} rows to {len(shards):,} shards at {pattern} "
          f"(webdataset) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return EXIT_OK


def add_convert(sub: argparse._SubParsersAction) -> None:
    """``zenith convert SRC DST --to FORMAT``: streaming, atomic conversion."""
    p = _data_command(
        sub, "convert",
        "convert a dataset to Parquet, CSV, Arrow IPC or WebDataset shards, streaming, atomically",
        "Reads SRC (any source zenith reads) in file order, a row group at a time, and writes "
        "DST as one file (WebDataset: tar shards of --shard-size samples, each column a member "
        "named by the column, so name columns by extension: jpg, cls, txt). Memory stays a few "
        "row groups whatever the size; DST appears only when complete (written to a hidden "
        "temporary file or folder beside it, then renamed), and an existing DST is kept unless "
        "--overwrite. A progress bar on a terminal, plain lines every 5 s otherwise.",
        "zenith convert data/*.csv train.parquet --to parquet --compression zstd",
        path="src",
    )
    p.add_argument("dst", help="the file to write; for webdataset a shard pattern "
                   "(out/shard-%%06d.tar) or a folder")
    p.add_argument("--to", required=True, choices=["parquet", "csv", "ipc", "webdataset"],
                   help="output format")
    p.add_argument("--shard-size", type=int, default=10_000,
                   help="webdataset: samples per shard (10,000)")
    p.add_argument("--row-group-size", type=int, default=65_536,
                   help="rows per row group (Parquet) or record batch (IPC) (65,536)")
    p.add_argument("--compression", default=None,
                   help="Parquet: snappy (default), zstd, gzip, lz4, brotli, none; IPC: zstd, lz4")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    p.set_defaults(handler=_cmd_convert)


#: Widest cell ``zenith head`` prints, in characters.
_CELL = 40


def _cell(value: object) -> str:
    """A value shortened for a table cell: long text cut, lists and bytes summarised."""
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (list, tuple)):
        parts = [_cell(v) for v in value[:3]]
        more = f", ... ({len(value)} items)" if len(value) > 3 else ""
        text = "[" + ", ".join(parts) + more + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= _CELL else text[: _CELL - 3] + "..."


def _cmd_head(args: argparse.Namespace) -> int:
    import zenith

    if args.n < 1:
        raise ValidationError("invalid argument `-n`: rows to show must be at least 1")
    source, columns = _source(args.path), _columns(args)
    # File order, a window of the rows shown and one batch ahead: only the first units are read.
    dl = zenith.DataLoader(
        source,
        batch_size=args.n,
        shuffle=False,
        columns=columns,
        output="arrow",
        format=args.format,
        shuffle_window=args.n,
        prefetch=1,
        num_workers=1,
    )
    it = iter(dl)
    batch = next(it, None)
    close = getattr(it, "close", None)
    if close is not None:
        close()
    if batch is None:
        print("(no rows)")
        return EXIT_OK
    names = list(batch.schema.names)
    rows = [[_cell(v) for v in row.values()] for row in batch.to_pylist()]
    print(table(rows, names))
    return EXIT_OK


def add_head(sub: argparse._SubParsersAction) -> None:
    """``zenith head PATH``: the first rows as an aligned table, reading only the first units."""
    p = _data_command(
        sub, "head",
        "print the first rows of a dataset as a table (reads only what they need)",
        "Prints the first -n rows of PATH in file order as an aligned table; long text, lists, "
        "structs and binary values are shortened. Only the first units (row groups, blocks) are "
        "read.",
        "zenith head data/train/ -n 5 --columns id,text",
    )
    p.add_argument("-n", type=int, default=10, help="rows to show (10)")
    p.set_defaults(handler=_cmd_head)


#: The stages ``zenith bench`` lists, as (stats key, label).
_STAGES = [
    ("read_s", "read"),
    ("decode_s", "decode"),
    ("sample_stages_s", "per-sample"),
    ("shuffle_s", "shuffle"),
    ("collate_s", "collate"),
    ("pack_s", "pack"),
    ("handover_s", "handover"),
    ("wait_s", "consumer waited"),
]


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} GB"


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    import zenith

    if args.batch_size < 1 or args.epochs < 1 or (args.seconds is not None and args.seconds <= 0):
        raise ValidationError(
            "invalid argument: --batch-size and --epochs must be at least 1, --seconds positive"
        )
    source, columns = _source(args.path), _columns(args)
    start = time.perf_counter()
    dl = zenith.DataLoader(
        source,
        batch_size=args.batch_size,
        shuffle=not args.no_shuffle,
        columns=columns,
        num_workers=args.num_workers,
        format=args.format,
    )
    first: float | None = None
    epochs = 0
    deadline = None if args.seconds is None else start + args.seconds
    stopped = False
    for _ in range(args.epochs):
        for _batch in dl:
            if first is None:
                first = time.perf_counter() - start
            if deadline is not None and time.perf_counter() > deadline:
                stopped = True
                break
        if stopped:
            break
        epochs += 1
    elapsed = time.perf_counter() - start
    stats = dl.stats()
    report = {
        "epochs": epochs,
        "stopped_early": stopped,
        "seconds": elapsed,
        "first_batch_s": first,
        "rows": stats["rows"],
        "batches": stats["batches"],
        "bytes": stats["bytes"],
        "rows_per_s": stats["rows"] / elapsed,
        "bytes_per_s": stats["bytes"] / elapsed,
        "threads": stats["threads"],
        "stages_s": {key: stats[key] for key, _ in _STAGES},
        "bottleneck": stats["bottleneck"],
        "bottleneck_hint": stats["bottleneck_hint"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    what = f"{epochs} epoch{'s' if epochs != 1 else ''}" + (" and part of one" if stopped else "")
    threads = f"{stats['threads']} decode thread{'s' if stats['threads'] != 1 else ''}"
    print(f"zenith bench {' '.join(args.path)}: {what}, batch_size {args.batch_size}, {threads}")
    print(f"  rows         {stats['rows']:,} ({report['rows_per_s']:,.0f} rows/s)")
    print(f"  bytes        {_size(stats['bytes'])} ({_size(report['bytes_per_s'])}/s)")
    print(f"  first batch  {first:.3f} s" if first is not None else "  first batch  (none)")
    print(f"  wall time    {elapsed:.2f} s")
    stages = ", ".join(f"{label} {stats[key]:.2f}" for key, label in _STAGES)
    print(f"  seconds per stage (summed over threads): {stages}")
    if stats["bottleneck"] is not None:
        print(f"  bottleneck   {stats['bottleneck']}: {stats['bottleneck_hint']}")
    return EXIT_OK


def add_bench(sub: argparse._SubParsersAction) -> None:
    """``zenith bench PATH``: a short loader run with rates, stage times and the bottleneck."""
    p = _data_command(
        sub, "bench",
        "run the loader over a dataset: rows/s, MB/s, first batch, time per stage, bottleneck",
        "Runs zenith.DataLoader over PATH for --epochs passes (or until --seconds), without a "
        "consumer doing work, and prints rows/s, MB/s, the first batch's time, seconds per stage "
        "from DataLoader.stats() and the stage that held batches back, with the knob that would "
        "move it.",
        "zenith bench data/train/ --batch-size 256 --columns x,y --num-workers 4",
    )
    p.add_argument("--batch-size", type=int, default=256, help="rows per batch (256)")
    p.add_argument("--num-workers", type=int, default=None, help="decode threads (default: cores - 1)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the data (1)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--no-shuffle", action="store_true", help="read in file order")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_bench)


# ---------------------------------------------------------------------------------- main

#: Subcommand registrars, in help order.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_jobs,
    add_submit,
    add_status,
    add_wait,
    add_logs,
    add_cancel,
    add_info,
    add_inspect,
    add_head,
    add_convert,
    add_bench,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``zenith`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="zenith",
        description="Zenith: fast data loading for ML training, and a small job runner.",
        epilog="exit codes: 0 ok, 1 failed (unknown job, job failed, ...), 2 bad usage or input",
    )
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    sub.required = True
    for register in SUBCOMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zenith`` console script."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ValidationError as exc:
        print(f"zenith: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SourceError, FormatError, SchemaError, StorageError) as exc:
        print(f"zenith: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except JobError as exc:
        print(f"zenith: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
