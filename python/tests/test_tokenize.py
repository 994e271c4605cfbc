"""Text tokenized in Rust on the decode threads (``zenith.text.pack(tokenizer=...)``): a BPE
trained here with the Python ``tokenizers`` package, its ids compared with that package's for
the same text through ``.txt``, JSON Lines, Parquet and CSV sources; every document once per
shuffled epoch; resume; object storage; errors naming the file, line or token."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zenith
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from zenith.exceptions import FormatError, ValidationError

EOS = "<|endoftext|>"
VOCABULARY = (
    "the of and to in is was for on that with as by at from his her an were are which this "
    "be or has had it not but their first new after also one two who they its other been "
    "zürich naïve café straße 東京 データ ñandú , . ; : ! ? ( ) 1999 2024 3.14 don't it's "
    "\"quoted\" tab\there   spaces  emoji🙂"
)
WORDS = VOCABULARY.split(" ")


def sentences(n: int, seed: int) -> list[str]:
    """``n`` documents of 0 to ~400 words drawn from WORDS (an empty one among them)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        k = 0 if i == 3 else int(rng.lognormvariate(3.2, 1.0)) + 1
        docs.append(" ".join(rng.choice(WORDS) for _ in range(min(k, 400))))
    return docs


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE (GPT-2's pre-tokenizer) of 600 ids trained on text written here."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=[EOS, "<s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sentences(2000, seed=1), trainer=trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sentences(300, seed=2)


def python_ids(tokenizer_file: Path, docs: list[str], special: bool = False) -> list[list[int]]:
    tok = Tokenizer.from_file(str(tokenizer_file))
    return [e.ids for e in tok.encode_batch(docs, add_special_tokens=special)]


def stream(batches: list[dict[str, Any]]) -> list[int]:
    """The tokens of a concat epoch in order, padding dropped."""
    ids = np.concatenate([np.asarray(b["input_ids"]) for b in batches])
    mask = np.concatenate([np.asarray(b["attention_mask"]) for b in batches])
    return ids[mask == 1].tolist()


def pack(tokenizer_file: Path, **kw: Any) -> zenith.text.Pack:
    kw.setdefault("seq_len", 64)
    return zenith.text.pack(tokenizer=tokenizer_file, eos_id=EOS, **kw)


def write_sources(root: Path, docs: list[str]) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = {"txt": root / "c.txt", "jsonl": root / "c.jsonl", "parquet": root / "c.parquet",
             "csv": root / "c.csv"}
    paths["txt"].write_text("".join(d + "\n" for d in docs), encoding="utf-8")
    with paths["jsonl"].open("w", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "text": d, "meta": {"n": len(d)}}, ensure_ascii=i % 2 == 0))
            f.write("\n\n" if i % 50 == 0 else "\n")
    table = pa.table({"id": np.arange(len(docs)), "text": docs})
    pq.write_table(table, paths["parquet"], row_group_size=37)
    pacsv.write_csv(table, paths["csv"])
    return paths


def test_encode_gives_the_python_packages_ids(tokenizer_file: Path, texts: list[str]) -> None:
    odd = ["", " ", "\n\n", "ß" * 50, "don't stop", "🙂🙂 x", "a\u2028b", EOS + " tail"]
    docs = texts + odd
    assert zenith.text.encode(tokenizer_file, docs) == python_ids(tokenizer_file, docs)
    # A post-processor that adds a BOS: applied with add_special_tokens=True only.
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    with_bos = tokenizer_file.with_name("bos.json")
    tok.save(str(with_bos))
    got = zenith.text.encode(with_bos, docs[:20], add_special_tokens=True)
    assert got == python_ids(with_bos, docs[:20], special=True)
    assert all(ids[0] == 1 for ids in got)
    assert zenith.text.encode(with_bos, docs[:20]) == python_ids(with_bos, docs[:20])


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "parquet", "csv"])
def test_each_source_packs_the_python_ids_in_file_order(
    tmp_path: Path, tokenizer_file: Path, texts: list[str], fmt: str
) -> None:
    paths = write_sources(tmp_path, texts)
    eos = Tokenizer.from_file(str(tokenizer_file)).token_to_id(EOS)
    want = [t for ids in python_ids(tokenizer_file, texts) for t in [*ids, eos]]
    dl = zenith.DataLoader(str(paths[fmt]), batch_size=4, num_workers=2, shuffle=False,
                           tokens=pack(tokenizer_file))
    got = list(dl)
    assert stream(got) == want
    labels = np.concatenate([np.asarray(b["labels"]) for b in got])
    ids = np.concatenate([np.asarray(b["input_ids"]) for b in got])
    # Within a sequence, each label is the next input unless a document ends there.
    inner = labels[:, :-1] != -100
    np.testing.assert_array_equal(labels[:, :-1][inner], ids[:, 1:][inner])
    assert dl.stats()["packed_tokens"] == len(want)


def test_a_shuffled_epoch_holds_every_document_once(
    tmp_path: Path, tokenizer_file: Path, texts: list[str]
) -> None:
    paths = write_sources(tmp_path, texts)
    dl = zenith.DataLoader(str(paths["jsonl"]), batch_size=4, shuffle=True, seed=4,
                           num_workers=2, tokens=pack(tokenizer_file, mode="pad", seq_len=512))
    got = list(dl)
    ids = np.concatenate([np.asarray(b["input_ids"]) for b in got])
    mask = np.concatenate([np.asarray(b["attention_mask"]) for b in got])
    eos = Tokenizer.from_file(str(tokenizer_file)).token_to_id(EOS)
    # pad mode: one document per sequence (none is longer than 512 tokens here).
    docs = sorted(tuple(row[m == 1].tolist()) for row, m in zip(ids, mask, strict=True))
    want = sorted(tuple([*d, eos]) for d in python_ids(tokenizer_file, texts))
    assert docs == want
    order = [d for d in (tuple(row[m == 1].tolist()) for row, m in zip(ids, mask, strict=True))]
    assert order != [tuple([*d, eos]) for d in python_ids(tokenizer_file, texts)]


def test_a_resumed_tokenized_epoch_continues_exactly(
    tmp_path: Path, tokenizer_file: Path, texts: list[str]
) -> None:
    paths = write_sources(tmp_path, texts)

    def make(workers: int) -> zenith.DataLoader:
        return zenith.DataLoader(str(paths["txt"]), batch_size=4, shuffle=True, seed=9,
                                 num_workers=workers, tokens=pack(tokenizer_file, mode="best_fit",
                                                                  buffer=4))

    whole = list(make(1))
    for stops in ([3], [1, 6], [10, 2]):
        out, state = [], None
        for i, stop in enumerate([*stops, None]):
            dl = make(1 + i % 2)
            if state is not None:
                dl.load_state_dict(json.loads(json.dumps(state)))
            it = iter(dl)
            for n, batch in enumerate(it):
                out.append(batch)
                if n + 1 == stop:
                    break
            state = dl.state_dict()
            it.close()
        assert len(out) == len(whole), stops
        for field in zenith.text.FIELDS:
            np.testing.assert_array_equal(
                np.concatenate([np.asarray(b[field]) for b in out]),
                np.concatenate([np.asarray(b[field]) for b in whole]), err_msg=f"{stops} {field}")


def test_zenith_load_reads_text_and_json_lines_as_pyarrow_does(tmp_path: Path, texts: list[str]) -> None:
    paths = write_sources(tmp_path, texts)
    table = zenith.load(str(paths["txt"]))
    assert table.schema.names == ["text"] and table["text"].to_pylist() == texts
    import pyarrow.json as pajson

    want = pajson.read_json(paths["jsonl"])
    got = zenith.load(str(paths["jsonl"]))
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()
    assert zenith.info(str(paths["jsonl"]))["format"] == "json"
    assert zenith.info(str(paths["txt"]))["rows"] == len(texts)


def test_errors_name_the_file_the_line_and_the_token(tmp_path: Path, tokenizer_file: Path) -> None:
    with pytest.raises(ValidationError, match=r"`eos_id`: '<eos>' is not a token of .*tokenizer\.json"):
        zenith.text.pack(16, tokenizer=tokenizer_file, eos_id="<eos>")
    broken = tmp_path / "broken.json"
    broken.write_text('{"model": {"type": "BPE"')
    with pytest.raises(FormatError, match=r"broken\.json: tokenizer: not a tokenizer\.json"):
        zenith.text.pack(16, tokenizer=broken)
    table = pa.table({"body": ["a b", "c"]})
    pq.write_table(table, tmp_path / "b.parquet")
    with pytest.raises(ValidationError, match=r'text column "text" is not in the data \(columns: body\)'):
        zenith.DataLoader(str(tmp_path / "b.parquet"), batch_size=2, tokens=pack(tokenizer_file))
    bad = tmp_path / "bad" / "c.txt"
    bad.parent.mkdir()
    bad.write_bytes(b"fine\nalso fine\nnot \xff utf-8\n")
    dl = zenith.DataLoader(str(bad), batch_size=2, tokens=pack(tokenizer_file))
    with pytest.raises(FormatError, match=r"c\.txt: line 3: text is not UTF-8 \(byte 19 of the file\)"):
        list(dl)
    skip = zenith.DataLoader(str(bad), batch_size=2, on_error="skip", tokens=pack(tokenizer_file))
    assert list(skip) == [] and skip.stats()["skipped_units"] == 1
    arr = tmp_path / "arr.json"
    arr.write_text('[{"text": "a"}]')
    with pytest.raises(FormatError, match=r"a JSON array; Zenith reads JSON Lines"):
        zenith.load(str(arr))
