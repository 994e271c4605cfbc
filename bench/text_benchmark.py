"""Language-model token streams side by side: documents packed into seq_len sequences.

Generated documents with a realistic length mix (log-normal, median ~400 tokens, a long tail to
32k; token ids uniform below 50,000) are written once as Parquet ``list<int32>`` documents and
as a Megatron-LM ``.bin`` + ``.idx`` pair (uint16). Each loader runs one shuffled pass at
seq_len 2048, B=8, in a fresh process (its peak RSS is its own), for at most ``--seconds``:

- zenith-parquet: ``zenith.torch.DataLoader(src, tokens=zenith.text.pack(2048,
  mode="concat", eos_id=0))``: five int64 fields (input_ids, labels, position_ids,
  document_ids, attention_mask); "ids+labels" with ``fields=["input_ids", "labels"]`` (what
  group_texts gives); "32 MB shuffle" with ``memory_budget=32 << 20``; zenith-bin the same over
  the Megatron ``.bin``/``.idx``; zenith-best_fit with ``mode="best_fit"`` (padding reported);
- litdata: ``litdata.optimize`` (untimed, once, into ``bench/data/tokens/litdata``) of each
  document with its EOS, then ``StreamingDataset(item_loader=TokensLoader(2049),
  shuffle=True)`` + ``StreamingDataLoader(batch_size=8)``, blocks of 2049 tokens;
- hf-datasets: ``datasets.load_dataset("parquet")`` + ``map`` with a batched ``group_texts``
  (untimed, once, its time reported) then torch's ``DataLoader(shuffle=True)`` over
  ``with_format("torch")``.

Peers are tried at each of ``--workers``; the best rate is kept. litdata is not in
requirements-dev.txt: ``pip install litdata`` first. Run: ``python
bench/text_benchmark.py --tokens 200000000`` (writes ``bench/results/text.md``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from image_benchmark import TreeMemory  # noqa: E402

SEQ = 2048
BATCH = 8
EOS = 0
VOCAB = 50_000


# Zenith's configurations: the source, the packing mode, the fields and the shuffle's memory.
ZENITH: dict[str, dict[str, Any]] = {
    "zenith-parquet": {"src": "parquet", "mode": "concat"},
    "zenith-parquet ids+labels": {"src": "parquet", "mode": "concat",
                                  "fields": ["input_ids", "labels"]},
    "zenith-parquet 32 MB shuffle": {"src": "parquet", "mode": "concat",
                                     "memory_budget": 32 << 20},
    "zenith-bin ids+labels": {"src": "bin", "mode": "concat", "fields": ["input_ids", "labels"]},
    "zenith-best_fit": {"src": "parquet", "mode": "best_fit"},
}


def data_dir(tokens: int) -> Path:
    return HERE / "data" / "tokens" / f"{tokens // 1_000_000}M"


def make_corpus(tokens: int) -> Path:
    """Parquet documents, and the same documents as a Megatron .bin/.idx (EOS appended)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = data_dir(tokens)
    done = root / "done.json"
    if done.exists():
        return root
    (root / "parquet").mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    total, part = 0, 0
    bin_path = root / "bin" / "corpus.bin"
    lengths_all: list[np.ndarray] = []
    with open(bin_path, "wb") as bin_file:
        while total < tokens:
            lengths = np.clip(rng.lognormal(6.0, 1.2, 20_000).astype(np.int64), 16, 32_768)
            values = rng.integers(1, VOCAB, int(lengths.sum()), dtype=np.int32)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            docs = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
            pq.write_table(
                pa.table({"input_ids": docs}),
                root / "parquet" / f"part-{part:03d}.parquet",
                row_group_size=2048,
            )
            # The .bin holds each document followed by its EOS, as Megatron's preprocessing writes.
            with_eos = np.insert(values, offsets[1:], EOS).astype(np.uint16)
            bin_file.write(with_eos.tobytes())
            lengths_all.append(lengths + 1)
            total += int(lengths.sum())
            part += 1
    lengths = np.concatenate(lengths_all).astype(np.int32)
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)]) * 2
    header = b"MMIDIDX\x00\x00" + np.uint64(1).tobytes() + bytes([8])
    header += np.uint64(len(lengths)).tobytes() + np.uint64(len(lengths) + 1).tobytes()
    documents = np.arange(len(lengths) + 1, dtype=np.int64)
    (root / "bin" / "corpus.idx").write_bytes(
        header + lengths.tobytes() + pointers.astype(np.int64).tobytes() + documents.tobytes()
    )
    done.write_text(json.dumps({"tokens": total, "documents": len(lengths)}))
    return root


def _litdata_docs(path: str) -> Any:
    """litdata's optimize fn: each document of one Parquet file with its EOS."""
    import pyarrow.parquet as pq
    import torch

    table = pq.read_table(path)
    for doc in table.column("input_ids").to_numpy():
        yield torch.from_numpy(np.append(doc, EOS).astype(np.int32))


def prepare_litdata(root: Path) -> tuple[Path, float]:
    import litdata

    out = root / "litdata"
    done = out / "done.json"
    if done.exists():
        return out, json.loads(done.read_text())["seconds"]
    start = time.perf_counter()
    litdata.optimize(
        fn=_litdata_docs,
        inputs=sorted(str(p) for p in (root / "parquet").glob("*.parquet")),
        output_dir=str(out),
        chunk_size=(SEQ + 1) * 1024,
        item_loader=litdata.TokensLoader(),
        num_workers=len(os.sched_getaffinity(0)),
        verbose=False,
    )
    seconds = time.perf_counter() - start
    done.write_text(json.dumps({"seconds": seconds}))
    return out, seconds


def _group_texts(batch: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
    """Hugging Face's group_texts: concatenate the batch's documents (with EOS), cut blocks."""
    import itertools

    ids = list(itertools.chain.from_iterable([*d, EOS] for d in batch["input_ids"]))
    n = len(ids) // SEQ * SEQ
    blocks = [ids[i : i + SEQ] for i in range(0, n, SEQ)]
    return {"input_ids": blocks, "labels": [b[:] for b in blocks]}


def prepare_hf(root: Path) -> tuple[Path, float]:
    import datasets

    out = root / "hf-grouped"
    done = out / "done.json"
    if done.exists():
        return out, json.loads(done.read_text())["seconds"]
    start = time.perf_counter()
    ds = datasets.load_dataset(
        "parquet",
        data_files=sorted(str(p) for p in (root / "parquet").glob("*.parquet")),
        split="train",
        cache_dir=str(root / "hf-cache"),
    )
    grouped = ds.map(
        _group_texts,
        batched=True,
        batch_size=1000,
        remove_columns=ds.column_names,
        num_proc=len(os.sched_getaffinity(0)),
    )
    grouped.save_to_disk(str(out))
    seconds = time.perf_counter() - start
    done.write_text(json.dumps({"seconds": seconds}))
    return out, seconds


def make_loader(spec: dict[str, Any]) -> Any:
    import torch

    root = Path(spec["root"])
    name, workers = spec["loader"], spec["workers"]
    if name.startswith("zenith"):
        import zenith.torch

        variant = ZENITH[name]
        tokens = zenith.text.pack(
            seq_len=SEQ,
            mode=variant["mode"],
            eos_id=None if variant["src"] == "bin" else EOS,
            fields=variant.get("fields"),
        )
        return zenith.torch.DataLoader(
            str(root / variant["src"]),
            batch_size=BATCH,
            shuffle=True,
            tokens=tokens,
            num_workers=workers,
            memory_budget=variant.get("memory_budget"),
        )
    if name == "litdata":
        import litdata

        ds = litdata.StreamingDataset(
            str(root / "litdata"),
            item_loader=litdata.TokensLoader(block_size=SEQ + 1),
            shuffle=True,
        )
        return litdata.StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers)
    if name == "hf-datasets":
        import datasets

        ds = datasets.load_from_disk(str(root / "hf-grouped")).with_format("torch")
        return torch.utils.data.DataLoader(
            ds, batch_size=BATCH, shuffle=True, num_workers=workers,
            persistent_workers=False,
        )
    raise ValueError(name)


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One pass of one loader in this process (imports done before the clock starts)."""
    import datasets  # noqa: F401
    import litdata  # noqa: F401
    import torch  # noqa: F401
    import zenith.torch  # noqa: F401

    memory = TreeMemory()
    start = time.perf_counter()
    dl = make_loader(spec)
    tokens = 0
    first = None
    checksum = 0
    for batch in dl:
        ids = batch["input_ids"] if isinstance(batch, dict) else batch
        if first is None:
            first = time.perf_counter() - start
        tokens += int(ids.shape[0]) * SEQ
        checksum += int(ids[:, 1].sum())
        if time.perf_counter() - start > spec["seconds"]:
            break
    elapsed = time.perf_counter() - start
    memory.stop()
    out = {
        "tokens": tokens,
        "seconds": elapsed,
        "rate": tokens / elapsed,
        "first_batch_s": first,
        "rss_growth_mb": (memory.peak - memory.base) / 2**20,
        "checksum": checksum,
    }
    if spec["loader"].startswith("zenith"):
        s = dl.stats()
        out["padding"] = s["padding_tokens"] / max(1, s["padding_tokens"] + s["packed_tokens"])
        out["read_s"], out["pack_s"] = s["read_s"], s["pack_s"]
    return out


def spawn(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def ceiling(root: Path) -> float:
    """Tokens/s of reading the Parquet token column into memory with pyarrow on every core
    (the decode alone, no packing, no shuffle)."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    tokens = 0
    for p in sorted((root / "parquet").glob("*.parquet")):
        tokens += len(pq.read_table(p).column("input_ids").combine_chunks().values)
    return tokens / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=200_000_000)
    p.add_argument("--seconds", type=float, default=30.0, help="longest pass per run")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", default="0,1,2", help="num_workers tried for the peers")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return
    if importlib.util.find_spec("litdata") is None:
        sys.exit("bench/text_benchmark.py compares with litdata: pip install litdata (it is not in "
                 "requirements-dev.txt)")
    root = make_corpus(args.tokens)
    meta = json.loads((root / "done.json").read_text())
    _, litdata_s = prepare_litdata(root)
    _, hf_s = prepare_hf(root)
    cores = len(os.sched_getaffinity(0))
    peer_workers = [int(w) for w in args.workers.split(",")]
    plan = {"hf-datasets": peer_workers, "litdata": peer_workers} | {n: [cores] for n in ZENITH}
    results: dict[str, dict[str, Any]] = {}
    for loader, tries in plan.items():
        for w in tries:
            runs = [
                spawn({"root": str(root), "loader": loader, "workers": w, "seconds": args.seconds})
                for _ in range(args.repeats)
            ]
            rate = statistics.median(r["rate"] for r in runs)
            r = runs[0] | {"rate": rate, "workers": w}
            print(loader, w, f"{rate / 1e6:.2f}M tokens/s", flush=True)
            if loader not in results or rate > results[loader]["rate"]:
                results[loader] = r
    best_peer = max(results[n]["rate"] for n in ("hf-datasets", "litdata"))
    peer_rss = min(results[n]["rss_growth_mb"] for n in ("hf-datasets", "litdata"))
    limit = ceiling(root)
    lines = [
        "# Language-model token streams: packed sequences of 2048 tokens, B=8",
        "",
        f"`python bench/text_benchmark.py --tokens {args.tokens} --seconds {args.seconds:g} "
        f"--repeats {args.repeats}`; {cores} cores; {meta['tokens'] / 1e6:.0f}M tokens in "
        f"{meta['documents']:,} documents (log-normal lengths, 16-32,768 tokens), shuffle on, "
        "one pass per run in a fresh process (cut after the time limit), median of the repeats; "
        "the clock starts after the imports, when the loader is made. Untimed preparation: "
        f"litdata `optimize` {litdata_s:.0f} s, Hugging Face `map(group_texts)` {hf_s:.0f} s.",
        "",
        "| loader | num_workers | tokens/s | vs best peer | first batch (s) | "
        "RSS growth (MB) | padding |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        padding = f"{r['padding']:.2%}" if "padding" in r else "0 (cut)"
        lines.append(
            f"| {name} | {r['workers']} | {r['rate'] / 1e6:.2f}M | {r['rate'] / best_peer:.1f}x | "
            f"{r['first_batch_s']:.2f} | {r['rss_growth_mb']:.0f} | {padding} |"
        )
    lines += [
        "",
        f"The limit: pyarrow reading the Parquet token column whole on {cores} threads, "
        f"{limit / 1e6:.0f}M tokens/s (no shuffle, no packing). RSS growth of the least hungry "
        f"peer: {peer_rss:.0f} MB.",
    ]
    out = HERE / "results" / "text.md"
    out.write_text("\n".join(lines) + "\n")
    (HERE / "results" / "text.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
