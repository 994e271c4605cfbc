"""Weighted mixtures (``zenith.mix``): the realised proportions over every 1,000 samples, each
source's own epochs (every sample once per epoch, a new order the next), the end of a mixture
that stops, exact resume with other thread counts and with new weights, packed token sources
through torch, and errors naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import zenith
import zenith.torch
from zenith.exceptions import ValidationError


def write(path: Path, source: int, rows: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    ids = np.arange(rows, dtype=np.int64)
    table = pa.table({"source": np.full(rows, source, np.int64), "id": ids, "x": ids * 0.5})
    pq.write_table(table, path / "part.parquet", row_group_size=64)
    return path


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("mix")
    return {"web": write(base / "web", 0, 3000), "code": write(base / "code", 1, 250)}


def loaders(roots: dict[str, Path], workers: int = 2, **kw: Any) -> dict[str, zenith.DataLoader]:
    return {
        name: zenith.DataLoader(str(root), batch_size=16, seed=i, num_workers=workers, **kw)
        for i, (name, root) in enumerate(roots.items())
    }


def samples(batches: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [
        (int(s), int(i))
        for b in batches
        for s, i in zip(np.asarray(b["source"]), np.asarray(b["id"]), strict=True)
    ]


def take(it: Any, n: int) -> list[dict[str, Any]]:
    return [b for _, b in zip(range(n), it, strict=False)]


def test_every_thousand_samples_hold_each_source_within_one_percent(roots: dict[str, Path]) -> None:
    mixed = zenith.mix(loaders(roots), weights={"web": 0.7, "code": 0.3}, batch_size=10)
    got = samples(take(iter(mixed), 600))
    assert len(got) == 6000
    code = np.array([s == 1 for s, _ in got], dtype=np.int64)
    windows = np.convolve(code, np.ones(1000, np.int64), "valid")
    assert windows.min() >= 290 and windows.max() <= 310
    assert abs(code[:1000].sum() - 300) <= 1


def test_each_source_runs_its_own_epochs(roots: dict[str, Path]) -> None:
    mixed = zenith.mix(loaders(roots), weights={"web": 0.5, "code": 0.5}, batch_size=10)
    got = samples(take(iter(mixed), 100))
    code = [i for s, i in got if s == 1]
    # 500 code samples: two whole epochs of its 250 rows, each a different permutation.
    assert len(code) == 500
    assert sorted(code[:250]) == list(range(250)) == sorted(code[250:])
    assert code[:250] != code[250:]
    web = [i for s, i in got if s == 0]
    assert len(set(web)) == len(web) == 500


def test_a_mixture_that_stops_ends_with_its_first_exhausted_source(roots: dict[str, Path]) -> None:
    mixed = zenith.mix(loaders(roots), weights={"web": 0.5, "code": 0.5}, batch_size=32,
                       exhausted="stop")
    got = samples(list(mixed))
    assert sum(1 for s, _ in got if s == 1) == 250
    assert 498 <= len(got) <= 502


def run_with_stops(roots: dict[str, Path], stops: list[int], weights: list[dict[str, float]],
                   per: str = "sample") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    state = None
    for i, stop in enumerate(stops):
        mixed = zenith.mix(loaders(roots, workers=1 + i % 3), weights=weights[i % len(weights)],
                           batch_size=10, per=per)
        if state is not None:
            mixed.load_state_dict(json.loads(json.dumps(state)))
        it = iter(mixed)
        out += take(it, stop)
        state = mixed.state_dict()
        it.close()
    return out


@pytest.mark.parametrize("per", ["sample", "batch"])
def test_a_resumed_mixture_continues_exactly(roots: dict[str, Path], per: str) -> None:
    weights = {"web": 0.8, "code": 0.2}
    whole = samples(take(iter(zenith.mix(loaders(roots), weights=weights, batch_size=10, per=per)), 120))
    for stops in ([7, 40, 73], [1, 1, 118], [60, 60]):
        assert samples(run_with_stops(roots, stops, [weights], per)) == whole, stops


def test_new_weights_on_resume_take_over_and_no_sample_repeats(roots: dict[str, Path]) -> None:
    got = samples(run_with_stops(roots, [50, 100], [{"web": 0.9, "code": 0.1}, {"web": 0.2, "code": 0.8}]))
    first, second = got[:500], got[500:]
    assert sum(s for s, _ in first) == 50
    assert sum(s for s, _ in second) == 800
    code = [i for s, i in got if s == 1]
    assert sorted(code[:250]) == list(range(250))  # the first code epoch whole, once
    web = [i for s, i in got if s == 0]
    assert len(set(web)) == len(web)


def test_a_mixture_saved_part_way_through_a_batch_is_refused_under_another_world_size(
    roots: dict[str, Path],
) -> None:
    mixed = zenith.mix(loaders(roots), weights={"web": 0.7, "code": 0.3}, batch_size=10)
    it = iter(mixed)
    take(it, 3)
    state = mixed.state_dict()
    it.close()
    assert state["sources"]["web"]["taken"] > 0
    other = zenith.mix(loaders(roots, rank=1, world_size=2), weights={"web": 0.7, "code": 0.3}, batch_size=10)
    with pytest.raises(ValidationError, match="source 'web' was saved part way through a batch under world_size 1"):
        other.load_state_dict(state)


def test_packed_token_sources_mix_through_torch(tmp_path: Path) -> None:
    for name, base in (("web", 1), ("code", 100_000)):
        docs = [[base + d * 100 + j for j in range(d % 40 + 2)] for d in range(300)]
        (tmp_path / name).mkdir()
        pq.write_table(pa.table({"input_ids": pa.array(docs, pa.list_(pa.int32()))}),
                       tmp_path / name / "t.parquet")
    tokens = zenith.text.pack(seq_len=32, eos_id=0)
    sources = {n: zenith.torch.DataLoader(str(tmp_path / n), batch_size=4, tokens=tokens)
               for n in ("web", "code")}
    mixed = zenith.mix(sources, weights={"web": 0.75, "code": 0.25}, batch_size=8)
    batches = take(iter(mixed), 20)
    ids = torch.cat([b["input_ids"] for b in batches])
    assert ids.shape == (160, 32) and ids.dtype == torch.int64
    # A sequence may open with the EOS of the document before it: its source is its largest id.
    from_code = (ids.max(dim=1).values >= 100_000).sum().item()
    assert from_code == 40


def test_bad_mixtures_are_named(roots: dict[str, Path]) -> None:
    ls = loaders(roots)
    with pytest.raises(ValidationError, match=r"`weights`: names \['code', 'wiki'\] differ"):
        zenith.mix(ls, weights={"wiki": 1, "code": 1}, batch_size=4)
    with pytest.raises(ValidationError, match="numbers >= 0 with a positive sum"):
        zenith.mix(ls, weights={"web": -1, "code": 1}, batch_size=4)
    with pytest.raises(ValidationError, match="per='sample' needs a positive int"):
        zenith.mix(ls)
    with pytest.raises(ValidationError, match="'code' is a list, not a loader"):
        zenith.mix({"web": ls["web"], "code": []}, batch_size=4)
    other = {"web": ls["web"], "code": zenith.DataLoader(str(roots["code"]), batch_size=16, columns=["id"])}
    with pytest.raises(ValidationError, match="cannot share a batch"):
        take(iter(zenith.mix(other, batch_size=64)), 3)
    mixed = zenith.mix(ls, batch_size=4)
    with pytest.raises(ValidationError, match="mixes \\['code', 'web'\\] per 'sample'"):
        mixed.load_state_dict(zenith.mix(ls, batch_size=4, per="batch").state_dict())
