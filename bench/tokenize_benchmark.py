"""Tokenizing text on the fly: Zenith's tokenizing stage against the Python ``tokenizers``
package on the same text, tokenizer file and thread count.

A corpus of generated English-like documents (pseudo-words with a Zipf frequency mix,
punctuation and numbers; log-normal document lengths) is written once as JSON Lines, and a
byte-level BPE of 32,000 ids is trained on a sample of it with ``tokenizers`` (untimed). Each
configuration runs in a fresh process with ``--threads`` threads (``RAYON_NUM_THREADS`` for
the package, ``num_workers`` for Zenith), the clock started after the imports:

- tokenizers encode_batch: the documents already in memory as a Python list (reading the
  JSON Lines not timed), ``Tokenizer.encode_batch`` over chunks of 1,000 documents;
- tokenizers encode_batch_fast: the same without offsets (the package's fastest call);
- zenith: ``zenith.DataLoader("corpus.jsonl", batch_size=8, tokens=zenith.text.pack(2048,
  tokenizer=..., eos_id=...))``, a whole epoch from the file (reading, JSON decoding,
  tokenizing and packing all timed).

Tokens/s counts the ids the tokenizer made (EOS and padding not counted). Run:
``python bench/tokenize_benchmark.py --mb 100`` (writes ``bench/results/tokenize.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEQ = 2048
EOS = "<|endoftext|>"
CONFIGS = ["tokenizers encode_batch", "tokenizers encode_batch_fast", "zenith"]


def data_dir(mb: int) -> Path:
    return HERE / "data" / "text" / f"{mb}MB"


def make_corpus(mb: int) -> Path:
    """``mb`` MB of JSON Lines documents and a BPE tokenizer trained on a sample of them."""
    root = data_dir(mb)
    if (root / "done.json").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 7.5, 7, 6.5, 6.3, 6, 6, 4.3, 4, 2.8, 2.8, 2.4, 2.4, 2.2, 2, 2, 1.9, 1.5,
               1, 0.8, 0.2, 0.2, 0.1, 0.07]
    words = sorted({"".join(rng.choices(letters, weights, k=rng.randint(1, 11)))
                    for _ in range(60_000)})
    rng.shuffle(words)
    zipf = [1 / (i + 1) for i in range(len(words))]
    punct = [",", ".", ";", ":", "!", "?", " -", "'s", "(1999)", "3.14", "\"x\""]
    target = mb * 1_000_000
    size = 0
    sample: list[str] = []
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        while size < target:
            n = min(int(rng.lognormvariate(5.5, 1.0)) + 5, 20_000)
            ws = rng.choices(words, zipf, k=n)
            for i in range(0, n, 9):
                ws[i] = ws[i].capitalize() + rng.choice(punct)
            doc = " ".join(ws)
            if len(sample) < 3000:
                sample.append(doc)
            line = json.dumps({"text": doc}) + "\n"
            f.write(line)
            size += len(line)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=32_000, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sample, trainer=trainer)
    tok.save(str(root / "tokenizer.json"))
    (root / "done.json").write_text(json.dumps({"bytes": size}))
    return root


def run_one(name: str, root: Path) -> dict[str, Any]:
    """One configuration, in this (fresh) process."""
    tokenizer = root / "tokenizer.json"
    corpus = root / "corpus.jsonl"
    if name.startswith("tokenizers"):
        from tokenizers import Tokenizer

        with open(corpus, encoding="utf-8") as f:
            docs = [json.loads(line)["text"] for line in f]
        tok = Tokenizer.from_file(str(tokenizer))
        encode = tok.encode_batch_fast if name.endswith("fast") else tok.encode_batch
        start = time.perf_counter()
        tokens = 0
        for i in range(0, len(docs), 1000):
            tokens += sum(len(e.ids) for e in encode(docs[i : i + 1000], add_special_tokens=False))
        seconds = time.perf_counter() - start
    else:
        import zenith

        threads = int(os.environ["RAYON_NUM_THREADS"])
        start = time.perf_counter()
        dl = zenith.DataLoader(str(corpus), batch_size=8, num_workers=threads,
                               tokens=zenith.text.pack(SEQ, tokenizer=tokenizer, eos_id=EOS,
                                                       fields=["input_ids", "labels"]))
        for _ in dl:
            pass
        seconds = time.perf_counter() - start
        stats = dl.stats()
        docs_n = zenith.info(str(corpus))["rows"]
        tokens = stats["packed_tokens"] - docs_n  # the EOS after each document is not the tokenizer's
    return {"name": name, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=100, help="MB of JSON Lines text")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = make_corpus(args.mb)
    if args.run:
        print(json.dumps(run_one(args.run, root)))
        return
    env = {**os.environ, "RAYON_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "true"}
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in CONFIGS}
    for r in range(args.repeats):
        for name in CONFIGS:
            out = subprocess.run([sys.executable, __file__, "--mb", str(args.mb), "--run", name],
                                 env=env, check=True, capture_output=True, text=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[name].append(res)
            print(f"[{r}] {name}: {res['tokens_per_s'] / 1e6:.2f}M tokens/s "
                  f"({res['tokens']:,} tokens, {res['seconds']:.2f} s)", flush=True)
    med = {n: statistics.median(x["tokens_per_s"] for x in rs) for n, rs in results.items()}
    best_peer = max(med[n] for n in CONFIGS if n != "zenith")
    lines = [
        "# Tokenizing text on the fly: Zenith against the tokenizers package",
        "",
        f"`python bench/tokenize_benchmark.py --mb {args.mb} --threads {args.threads} "
        f"--repeats {args.repeats}`; {args.threads} threads each; byte-level BPE of 32,000 ids; "
        f"{results['zenith'][0]['tokens']:,} tokens per pass; median of {args.repeats} fresh "
        "processes. The package's rows start from documents already in a Python list; Zenith's "
        "from the JSON Lines file (reading, decoding and packing included).",
        "",
        "| configuration | tokens/s | vs best tokenizers call |",
        "|---|---:|---:|",
    ]
    for n in CONFIGS:
        lines.append(f"| {n} | {med[n] / 1e6:.2f}M | {med[n] / best_peer:.2f}x |")
    out_dir = HERE / "results"
    (out_dir / "tokenize.md").write_text("\n".join(lines) + "\n")
    (out_dir / "tokenize.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
