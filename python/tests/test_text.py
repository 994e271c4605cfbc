"""Sequence packing (``zenith.text.pack``): the exact sequences of each mode against a Python
reference, the labels, positions and document ids of every token, each token delivered once per
epoch, resume at random points with another thread count (and under a rank split), the token
column types real files hold, and clear errors for the rest."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import zenith
import zenith.torch
from zenith.exceptions import ValidationError, ZenithError

EOS = 0
PAD = -1


def documents(n: int, seed: int = 0, longest: int = 60) -> list[list[int]]:
    """``n`` documents of 1..longest tokens; every token id is unique (document * 1000 + j + 1),
    so each token can be traced back to its document and place."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, longest, n)
    return [[d * 1000 + j + 1 for j in range(int(k))] for d, k in enumerate(lengths)]


def write(path: Path, docs: list[list[int]], type_: pa.DataType | None = None, rows: int = 40) -> Path:
    type_ = type_ or pa.list_(pa.int32())
    pq.write_table(pa.table({"input_ids": pa.array(docs, type_)}), path, row_group_size=rows)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[int]]]:
    docs = documents(400)
    root = tmp_path_factory.mktemp("tokens")
    write(root / "a.parquet", docs[:250])
    write(root / "b.parquet", docs[250:])
    return root, docs


def loader(path: Path, mode: str, seq_len: int = 16, **kw: Any) -> zenith.DataLoader:
    buffer = kw.pop("buffer", 8)
    tokens = zenith.text.pack(seq_len=seq_len, mode=mode, eos_id=EOS, pad_id=PAD, buffer=buffer)
    kw.setdefault("batch_size", 4)
    return zenith.DataLoader(str(path), tokens=tokens, **kw)


def stacked(batches: list[dict[str, Any]], field: str) -> np.ndarray:
    return np.concatenate([np.asarray(b[field]) for b in batches])


def reference(docs: list[list[int]], mode: str, seq_len: int) -> dict[str, np.ndarray]:
    """What concat and pad packing must give for documents in this order."""
    seqs: list[list[tuple[int, int, int, int]]] = [[]]  # (token, label, position, document)

    def room() -> int:
        return seq_len - len(seqs[-1])

    for doc in docs:
        doc = [*doc, EOS]
        at = 0
        while at < len(doc):
            if room() == 0 or (mode == "pad" and seqs[-1]):
                seqs.append([])
            n = min(room(), len(doc) - at)
            index = len({t[3] for t in seqs[-1]})
            for j in range(at, at + n):
                label = doc[j + 1] if j + 1 < len(doc) else -100
                seqs[-1].append((doc[j], label, j - at, index))
            at += n
    out: dict[str, list[list[int]]] = {k: [] for k in zenith.text.FIELDS}
    for s in seqs:
        pad = seq_len - len(s)
        out["input_ids"].append([t[0] for t in s] + [PAD] * pad)
        out["labels"].append([t[1] for t in s] + [-100] * pad)
        out["position_ids"].append([t[2] for t in s] + list(range(pad)))
        out["document_ids"].append([t[3] for t in s] + [-1] * pad)
        out["attention_mask"].append([1] * len(s) + [0] * pad)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


@pytest.mark.parametrize("mode", ["concat", "pad"])
def test_sequences_match_the_reference_packing_of_the_documents_in_file_order(
    corpus: tuple[Path, list[list[int]]], mode: str
) -> None:
    root, docs = corpus
    batches = list(loader(root, mode, shuffle=False, num_workers=2))
    assert all(b["input_ids"].shape == (4, 16) for b in batches[:-1])
    expected = reference(docs, mode, 16)
    for field in zenith.text.FIELDS:
        got = stacked(batches, field)
        assert got.dtype == np.int64, field
        np.testing.assert_array_equal(got, expected[field], err_msg=field)


def check_sequences(batches: list[dict[str, Any]], docs: list[list[int]]) -> None:
    """Every token of every document once, each piece a contiguous run of its document with
    the right labels, positions and document ids; padding masked."""
    inp, lab = stacked(batches, "input_ids"), stacked(batches, "labels")
    pos, doc_ids = stacked(batches, "position_ids"), stacked(batches, "document_ids")
    mask = stacked(batches, "attention_mask")
    by_id = {t: (d, j) for d, doc in enumerate(docs) for j, t in enumerate(doc)}
    seen: list[tuple[int, int]] = []
    # An EOS that opens a piece (the rest of a cut document) names no document: counted.
    lone_eos = 0
    for s in range(inp.shape[0]):
        last = None  # (document, place, document id in the sequence) of the previous token
        for t in range(inp.shape[1]):
            if mask[s, t] == 0:
                assert (inp[s, t], lab[s, t], doc_ids[s, t]) == (PAD, -100, -1)
                last = None
                continue
            tok = int(inp[s, t])
            ends_last = last is not None and last[0] >= 0 and last[1] == len(docs[last[0]]) - 1
            if tok == EOS and not ends_last:
                assert (lab[s, t], pos[s, t]) == (-100, 0)
                assert doc_ids[s, t] == (0 if last is None else last[2] + 1)
                lone_eos += 1
                last = (-1, -1, doc_ids[s, t])
                continue
            if tok == EOS:
                assert lab[s, t] == -100
                d, j = last[0], len(docs[last[0]])
            else:
                d, j = by_id[tok]
                want = docs[d][j + 1] if j + 1 < len(docs[d]) else EOS
                assert lab[s, t] == want, (s, t)
            seen.append((d, j))
            if last is not None and last[0] == d and last[1] == j - 1:
                assert pos[s, t] == pos[s, t - 1] + 1 and doc_ids[s, t] == last[2]
                piece = last[2]
            else:
                assert pos[s, t] == 0, (s, t)
                piece = doc_ids[s, t]
                assert piece == (0 if last is None else last[2] + 1)
            last = (d, j, piece)
    expected = [(d, j) for d, doc in enumerate(docs) for j in range(len(doc) + 1)]
    missing = sorted(set(expected) - set(seen))
    assert len(missing) == lone_eos and all(j == len(docs[d]) for d, j in missing)
    assert sorted(seen + missing) == expected


@pytest.mark.parametrize("mode", ["concat", "pad", "best_fit"])
def test_every_token_comes_once_per_epoch_with_its_labels_and_positions(
    corpus: tuple[Path, list[list[int]]], mode: str
) -> None:
    root, docs = corpus
    dl = loader(root, mode, seed=3, num_workers=2)
    first = list(dl)
    check_sequences(first, docs)
    second = list(dl)
    check_sequences(second, docs)
    assert not np.array_equal(stacked(first, "input_ids")[:8], stacked(second, "input_ids")[:8])
    stats = dl.stats()
    real = sum(len(d) + 1 for d in docs)
    assert stats["packed_tokens"] == 2 * real
    positions = stacked(first, "input_ids").size + stacked(second, "input_ids").size
    assert stats["padding_tokens"] == positions - 2 * real


def test_best_fit_keeps_padding_under_five_percent_on_a_realistic_length_mix(
    tmp_path: Path,
) -> None:
    # Document lengths of web text: log-normal, median ~120 tokens, a long tail past 2,000.
    rng = np.random.default_rng(7)
    lengths = np.clip(rng.lognormal(4.8, 1.1, 3000).astype(int), 1, 4000)
    docs = [np.full(n, 5, np.int32) for n in lengths]
    pq.write_table(pa.table({"input_ids": pa.array(docs, pa.list_(pa.int32()))}), tmp_path / "r.parquet")
    padding = {}
    for mode in ["pad", "best_fit"]:
        dl = loader(tmp_path / "r.parquet", mode, seq_len=512, buffer=64)
        list(dl)
        s = dl.stats()
        assert s["packed_tokens"] == int(lengths.sum()) + len(lengths)
        padding[mode] = s["padding_tokens"] / (s["padding_tokens"] + s["packed_tokens"])
    assert padding["best_fit"] < 0.05 and padding["pad"] > 0.5, padding


def resume_and_stop(dl: zenith.DataLoader, state: Any, stop: int | None) -> tuple[list[dict[str, Any]], Any]:
    """Loads ``state`` (when given, through JSON) into ``dl``, takes batches until ``stop`` of
    them (``None``: the epoch's end) and returns them with the state after them."""
    if state is not None:
        dl.load_state_dict(json.loads(json.dumps(state)))
    out: list[dict[str, Any]] = []
    it = iter(dl)
    for n, batch in enumerate(it):
        out.append(batch)
        if stop is not None and n + 1 == stop:
            break
    state = dl.state_dict()
    it.close()
    return out, state


def run_with_stops(
    root: Path, mode: str, stops: list[int], workers: list[int], **kw: Any
) -> list[dict[str, Any]]:
    """An epoch interrupted after each count in ``stops`` and resumed from its state (through
    JSON) on a new loader with the next thread count."""
    out: list[dict[str, Any]] = []
    state = None
    for i, stop in enumerate([*stops, None]):
        dl = loader(root, mode, num_workers=workers[i % len(workers)], **kw)
        batches, state = resume_and_stop(dl, state, stop)
        out += batches
    return out


@pytest.mark.parametrize("mode", ["concat", "pad", "best_fit"])
def test_a_resumed_epoch_gives_the_sequences_of_an_uninterrupted_one(
    corpus: tuple[Path, list[list[int]]], mode: str
) -> None:
    root, _ = corpus
    whole = list(loader(root, mode, seed=5, num_workers=1))
    rng = random.Random(f"resume {mode}")
    for trial in range(4):
        stops = [rng.randint(1, 12) for _ in range(rng.randint(1, 4))]
        got = run_with_stops(root, mode, stops, [2, 1, 3], seed=5)
        assert len(got) == len(whole), (trial, stops)
        for field in zenith.text.FIELDS:
            np.testing.assert_array_equal(
                stacked(got, field), stacked(whole, field), err_msg=f"{stops} {field}"
            )


def test_ranks_pack_their_own_documents_and_resume_under_their_world_size(
    corpus: tuple[Path, list[list[int]]],
) -> None:
    root, docs = corpus
    per_rank = []
    for rank in range(2):
        kw = {"seed": 2, "rank": rank, "world_size": 2}
        whole = list(loader(root, "best_fit", **kw))
        resumed = run_with_stops(root, "best_fit", [3, 5], [1, 2], **kw)
        np.testing.assert_array_equal(stacked(resumed, "input_ids"), stacked(whole, "input_ids"))
        per_rank.append(set(stacked(whole, "input_ids").ravel().tolist()) - {EOS, PAD})
    assert not per_rank[0] & per_rank[1]
    everything = {t for d in docs for t in d}
    assert len(per_rank[0] | per_rank[1]) == len(everything)  # 400 documents split evenly


def run_generation(
    root: Path, mode: str, world: int, states: list[dict[str, Any]] | None, stops: list[int | None], **kw: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ranks ``0..world`` each continue from the list ``states`` (through JSON) and stop after
    their count in ``stops`` (``None``: the epoch's end); returns their batches and states."""
    batches: list[dict[str, Any]] = []
    saved = []
    for rank, stop in enumerate(stops):
        got, state = resume_and_stop(loader(root, mode, rank=rank, world_size=world, **kw), states, stop)
        batches += got
        saved.append(state)
    return batches, saved


@pytest.mark.parametrize("mode", ["concat", "pad", "best_fit"])
def test_an_epoch_resumed_under_other_world_sizes_delivers_every_token_once(
    corpus: tuple[Path, list[list[int]]], mode: str
) -> None:
    root, docs = corpus
    rng = random.Random(f"worlds {mode}")
    for trial in range(5):
        worlds = [rng.choice([1, 2, 3, 4]) for _ in range(rng.randint(2, 3))]
        # The documents of an uninterrupted epoch under the first world size (a split that is
        # not even leaves the last documents of the epoch's order out).
        whole = [b for r in range(worlds[0]) for b in loader(root, mode, seed=trial, rank=r, world_size=worlds[0])]
        present = set(stacked(whole, "input_ids").ravel().tolist())
        kept = [d for d in docs if d[0] in present]
        got: list[dict[str, Any]] = []
        states = None
        for g, world in enumerate(worlds):
            last = g == len(worlds) - 1
            # Each rank stops where it likes (some past their end), with its own thread count.
            stops = [None if last else rng.randint(1, 30 // world) for _ in range(world)]
            workers = rng.choice([1, 2, 3])
            batches, states = run_generation(root, mode, world, states, stops, seed=trial, num_workers=workers)
            got += batches
        check_sequences(got, kept)


def test_a_list_of_states_under_the_same_world_size_gives_each_rank_its_own_sequences(
    corpus: tuple[Path, list[list[int]]],
) -> None:
    root, _ = corpus
    whole = [list(loader(root, "best_fit", seed=4, rank=r, world_size=2)) for r in range(2)]
    first, states = run_generation(root, "best_fit", 2, None, [3, 6], seed=4)
    assert [s["plan"]["rank"] for s in states] == [0, 1]
    np.testing.assert_array_equal(
        stacked(first, "input_ids"), stacked(whole[0][:3] + whole[1][:6], "input_ids")
    )
    for rank in range(2):
        dl = loader(root, "best_fit", seed=4, rank=rank, world_size=2, num_workers=3)
        dl.load_state_dict(states[::-1])  # any order: each state names its rank
        rest = list(dl)
        done = [3, 6][rank]
        np.testing.assert_array_equal(stacked(rest, "input_ids"), stacked(whole[rank][done:], "input_ids"))


def test_a_mid_epoch_state_of_one_rank_under_another_world_size_is_refused(
    corpus: tuple[Path, list[list[int]]],
) -> None:
    root, _ = corpus
    _, states = run_generation(root, "concat", 2, None, [1, 2])
    assert states[0]["stages"]["pack"]["mode"] == "concat"
    other = loader(root, "concat", rank=0, world_size=4)
    need_all = r"under another world size \(saved under 2, this loader has 4\) from the states of all 2 ranks"
    with pytest.raises(ValidationError, match=need_all):
        other.load_state_dict(states[0])
    with pytest.raises(ValidationError, match="1 states for a run of world size 2"):
        other.load_state_dict(states[:1])
    with pytest.raises(ValidationError, match="rank 0 is given twice"):
        other.load_state_dict([states[0], states[0]])
    with pytest.raises(ValidationError, match="a non-empty list"):
        other.load_state_dict([])
    with pytest.raises(ValidationError, match='packing "concat" sequences of 16 tokens; this loader packs "pad"'):
        loader(root, "pad", rank=0, world_size=2).load_state_dict(states[0])
    # At an epoch's end the state carries nothing: any world size continues.
    done = loader(root, "concat")
    list(done)
    loader(root, "concat", world_size=4).load_state_dict(done.state_dict())


@pytest.mark.parametrize(
    "type_",
    [
        pa.list_(pa.uint16()),
        pa.list_(pa.int64()),
        pa.large_list(pa.uint32()),
    ],
    ids=str,
)
def test_token_columns_of_every_integer_width(tmp_path: Path, type_: pa.DataType) -> None:
    docs = [[(d * 7 + j) % 60000 + 1 for j in range(d % 23 + 1)] for d in range(120)]
    write(tmp_path / "t.parquet", docs, type_)
    batches = list(loader(tmp_path / "t.parquet", "concat", shuffle=False))
    expected = reference(docs, "concat", 16)
    np.testing.assert_array_equal(stacked(batches, "input_ids"), expected["input_ids"])


def test_fixed_size_token_rows_and_bos(tmp_path: Path) -> None:
    docs = np.arange(1, 1 + 30 * 5, dtype=np.int32).reshape(30, 5)
    table = pa.table({"ids": pa.FixedSizeListArray.from_arrays(pa.array(docs.ravel()), 5)})
    pq.write_table(table, tmp_path / "f.parquet")
    tokens = zenith.text.pack(seq_len=7, column="ids", bos_id=9999, mode="pad", pad_id=PAD)
    dl = zenith.DataLoader(str(tmp_path / "f.parquet"), batch_size=8, shuffle=False, tokens=tokens)
    inp = stacked(list(dl), "input_ids")
    assert inp.shape == (30, 7)
    np.testing.assert_array_equal(inp[:, 0], 9999)
    np.testing.assert_array_equal(inp[:, 1:6], docs)
    np.testing.assert_array_equal(inp[:, 6], PAD)


def test_the_torch_loader_gives_int64_tensors_and_cu_seqlens(
    corpus: tuple[Path, list[list[int]]],
) -> None:
    root, _ = corpus
    tokens = zenith.text.pack(seq_len=32, mode="best_fit", eos_id=EOS, pad_id=PAD)
    dl = zenith.torch.DataLoader(str(root), batch_size=4, tokens=tokens)
    batch = next(iter(dl))
    assert set(batch) == set(zenith.text.FIELDS)
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.int64 for v in batch.values())
    cu = zenith.text.cu_seqlens(batch["position_ids"])
    assert cu.dtype == torch.int32 and cu[0] == 0 and cu[-1] == 4 * 32
    lengths = torch.diff(cu)
    # Each segment is a run of one document (or of padding) within one sequence.
    flat_docs = batch["document_ids"].flatten()
    for start, n in zip(cu[:-1].tolist(), lengths.tolist(), strict=True):
        assert len(set(flat_docs[start : start + n].tolist())) == 1
        assert batch["position_ids"].flatten()[start : start + n].tolist() == list(range(n))
    np.testing.assert_array_equal(
        zenith.text.cu_seqlens(batch["position_ids"].numpy()), cu.numpy()
    )
    with pytest.raises(TypeError, match="packed loader"):
        len(dl)


def test_bad_packing_arguments_and_columns_are_named(
    corpus: tuple[Path, list[list[int]]], tmp_path: Path
) -> None:
    root, _ = corpus
    with pytest.raises(ValidationError, match='`mode`: "greedy"'):
        zenith.text.pack(mode="greedy")
    with pytest.raises(ValidationError, match="`seq_len`: must be at least 2"):
        zenith.text.pack(seq_len=1)
    with pytest.raises(ValidationError, match="`seq_len`: expected an int"):
        zenith.text.pack(seq_len="2048")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"`tokens`: expected zenith\.text\.pack"):
        zenith.DataLoader(str(root), tokens={"seq_len": 8})  # type: ignore[arg-type]
    with pytest.raises(ZenithError, match=r'column "text"; available columns: input_ids'):
        zenith.DataLoader(str(root), tokens=zenith.text.pack(column="text"))
    pq.write_table(pa.table({"input_ids": ["a b", "c"]}), tmp_path / "s.parquet")
    with pytest.raises(ValidationError, match='column "input_ids" is Utf8; packing needs a list of integer'):
        zenith.DataLoader(str(tmp_path / "s.parquet"), tokens=zenith.text.pack())
    with pytest.raises(ValidationError, match="leave columns unset"):
        zenith.DataLoader(str(root), columns=["input_ids"], tokens=zenith.text.pack())
    with pytest.raises(ValidationError, match="use transform= on the whole batch"):
        zenith.DataLoader(str(root), map=lambda s: s, tokens=zenith.text.pack())


def test_a_subset_of_fields_holds_the_same_values(corpus: tuple[Path, list[list[int]]]) -> None:
    root, _ = corpus
    full = list(loader(root, "best_fit", seed=9))
    tokens = zenith.text.pack(seq_len=16, mode="best_fit", eos_id=EOS, pad_id=PAD, buffer=8,
                              fields=["labels", "input_ids"])
    some = list(zenith.DataLoader(str(root), batch_size=4, seed=9, tokens=tokens))
    assert list(some[0]) == ["input_ids", "labels"]
    for field in ["input_ids", "labels"]:
        np.testing.assert_array_equal(stacked(some, field), stacked(full, field))
    with pytest.raises(ValidationError, match='`fields`: "mask" is not a packed field'):
        zenith.text.pack(fields=["mask"])


def test_null_documents_are_no_documents_and_null_tokens_are_an_error(tmp_path: Path) -> None:
    write(tmp_path / "n.parquet", [[1, 2], None, [3]])  # type: ignore[list-item]
    batches = list(loader(tmp_path / "n.parquet", "concat", shuffle=False))
    np.testing.assert_array_equal(stacked(batches, "input_ids")[0, :5], [1, 2, EOS, 3, EOS])
    write(tmp_path / "m.parquet", [[1, None, 2]])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="null token id"):
        list(loader(tmp_path / "m.parquet", "concat"))


def write_megatron(prefix: Path, docs: list[list[int]], dtype: type = np.uint16) -> None:
    """A Megatron-LM indexed dataset (``prefix.bin`` + ``prefix.idx``), laid out as its
    ``IndexedDatasetBuilder`` writes it: header, sequence lengths, byte pointers, document
    indices."""
    codes = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5, np.uint16: 8}
    arrays = [np.asarray(d, dtype) for d in docs]
    prefix.with_suffix(".bin").write_bytes(b"".join(a.tobytes() for a in arrays))
    lengths = np.array([len(a) for a in arrays], np.int32)
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)]) * np.dtype(dtype).itemsize
    header = b"MMIDIDX\x00\x00" + np.uint64(1).tobytes() + bytes([codes[dtype]])
    header += np.uint64(len(arrays)).tobytes() + np.uint64(len(arrays) + 1).tobytes()
    documents = np.arange(len(arrays) + 1, dtype=np.int64)
    body = lengths.tobytes() + pointers.astype(np.int64).tobytes() + documents.tobytes()
    prefix.with_suffix(".idx").write_bytes(header + body)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_a_megatron_indexed_dataset_reads_one_document_per_sequence(tmp_path: Path, dtype: type) -> None:
    docs = [[(d * 13 + j) % 30000 + 1 for j in range(d % 37 + 1)] for d in range(300)]
    write_megatron(tmp_path / "corpus_text_document", docs, dtype)
    # The directory holds the .bin and its .idx: the index is read with its file.
    dl = loader(tmp_path, "pad", shuffle=False)
    expected = reference(docs, "pad", 16)
    for field in zenith.text.FIELDS:
        np.testing.assert_array_equal(stacked(list(dl), field), expected[field], err_msg=field)
    got = zenith.load(str(tmp_path / "corpus_text_document.bin"))
    assert got.num_rows == 300
    assert got.column("input_ids").to_pylist()[:3] == docs[:3]


def test_a_flat_token_file_is_one_stream_cut_into_sequences(tmp_path: Path) -> None:
    # nanoGPT's train.bin: uint16 tokens, documents separated by their EOS in the stream.
    stream = np.random.default_rng(4).integers(1, 50000, 16 * 50 + 5).astype(np.uint16)
    (tmp_path / "train.bin").write_bytes(stream.tobytes())
    # Rows of seq_len tokens: "pad" keeps each row one sequence (the short last one padded).
    tokens = zenith.text.pack(seq_len=16, mode="pad")
    dl = zenith.DataLoader(str(tmp_path / "train.bin"), batch_size=8, seed=1, tokens=tokens)
    batches = list(dl)
    inp = stacked(batches, "input_ids")
    assert inp.shape == (51, 16)
    rows = {tuple(r) for r in inp[np.asarray(stacked(batches, "attention_mask")).all(1)].tolist()}
    assert rows == {tuple(stream[i : i + 16].tolist()) for i in range(0, 16 * 50, 16)}
    labels = stacked(batches, "labels")
    full = np.asarray(stacked(batches, "attention_mask")).all(1)
    np.testing.assert_array_equal(labels[full, :-1], inp[full, 1:])
    np.testing.assert_array_equal(labels[:, -1], -100)
    short = inp[~full]
    assert short.shape == (1, 16) and short[0, :5].tolist() == stream[-5:].tolist()
    # uint32 files say so; a size that is no whole number of tokens is a FormatError.
    wide = np.arange(1, 70001, dtype=np.uint32)
    (tmp_path / "wide").mkdir()
    (tmp_path / "wide" / "w.bin").write_bytes(wide.tobytes())
    tokens32 = zenith.text.pack(seq_len=1000, dtype="uint32")
    wide_dl = zenith.DataLoader(str(tmp_path / "wide"), batch_size=7, shuffle=False, tokens=tokens32)
    got = stacked(list(wide_dl), "input_ids")
    np.testing.assert_array_equal(got.ravel(), wide)
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00\x02")
    with pytest.raises(zenith.FormatError, match=r"odd\.bin: byte 2: 3 bytes are not a whole number of uint16 tokens"):
        zenith.DataLoader(str(tmp_path / "odd.bin"), tokens=tokens)
    with pytest.raises(ValidationError, match="dtype"):
        zenith.text.pack(dtype="complex64")


def test_a_broken_megatron_index_is_a_format_error_naming_it(tmp_path: Path) -> None:
    write_megatron(tmp_path / "c", [[1, 2, 3], [4, 5]])
    idx = (tmp_path / "c.idx").read_bytes()
    (tmp_path / "c.idx").write_bytes(idx[:30])
    with pytest.raises(zenith.FormatError, match=r"c\.idx: header: 2 sequences do not fit"):
        zenith.DataLoader(str(tmp_path), tokens=zenith.text.pack())


def test_npy_token_shards_are_streams_of_the_width_their_header_says(tmp_path: Path) -> None:
    # Token shards saved with np.save (uint16 as nanoGPT-style FineWeb shards, uint32, 2-D).
    rng = np.random.default_rng(8)
    shards = [rng.integers(1, 60000, 3000).astype(np.uint16),
              rng.integers(1, 200_000, 2500).astype(np.uint32).reshape(50, 50)]
    (tmp_path / "a").mkdir()
    np.save(tmp_path / "a" / "shard_000.npy", shards[0])
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "b" / "shard_001.npy", shards[1])
    for folder, shard in (("a", shards[0]), ("b", shards[1])):
        dl = zenith.DataLoader(str(tmp_path / folder), batch_size=3, shuffle=False,
                               tokens=zenith.text.pack(seq_len=128, mode="concat"))
        batches = list(dl)
        ids = stacked(batches, "input_ids")[stacked(batches, "attention_mask") == 1]
        np.testing.assert_array_equal(ids, shard.ravel().astype(np.int64))
        assert zenith.info(str(tmp_path / folder))["format"] == "tokens"
    with pytest.raises(ValidationError, match=r"shard_001\.npy holds uint32 tokens, not uint16"):
        zenith.DataLoader(str(tmp_path / "b"), tokens=zenith.text.pack(dtype="uint16"))
    raw = (tmp_path / "a" / "shard_000.npy").read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "c.npy").write_bytes(raw[:-10])
    cut = r"c\.npy: header: shape \[3000\] of uint16 needs 6000 bytes after the header, the file has 5990"
    with pytest.raises(zenith.FormatError, match=cut):
        zenith.DataLoader(str(tmp_path / "cut"), tokens=zenith.text.pack())
    np.save(tmp_path / "cut" / "c.npy", np.ones(4, np.float32))
    with pytest.raises(zenith.FormatError, match=r"an array of float32; token files hold integer ids"):
        zenith.DataLoader(str(tmp_path / "cut"), tokens=zenith.text.pack())
