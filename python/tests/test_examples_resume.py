"""The resume examples, run for real on CPU: a Lightning ``LightningDataModule`` whose
checkpoint carries the loader's state, and a plain loop with ``torch.save``. A run stopped
mid-epoch and resumed from its last checkpoint trains on exactly the batches an uninterrupted
run trains on after that checkpoint."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch", reason="torch is not installed; `make test` installs it")
pytest.importorskip("lightning", reason="`make test` installs lightning")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROWS, B = 1_000, 64
STEPS_PER_EPOCH = (ROWS + B - 1) // B  # 16


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("resume-data")
    rng = np.random.default_rng(0)
    ids = np.arange(ROWS, dtype=np.int64)
    cols = {"id": ids, "label": ids % 10}
    cols |= {f"f{j}": rng.standard_normal(ROWS).astype(np.float32) for j in range(4)}
    table = pa.table(cols)
    for k in range(2):
        pq.write_table(table.slice(k * 500, 500), root / f"part-{k}.parquet", row_group_size=100)
    return str(root)


def lines(path: Path) -> list[list[int]]:
    return [[int(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_lightning_resumes_the_loader_from_a_mid_epoch_checkpoint(data: str, tmp_path: Path) -> None:
    lightning_resume = example("lightning_resume")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    lightning_resume.train(data, str(whole), epochs=2)
    want = lines(whole / "seen.txt")
    assert len(want) == 2 * STEPS_PER_EPOCH
    epoch0 = sorted(i for batch in want[:STEPS_PER_EPOCH] for i in batch)
    assert epoch0 == list(range(ROWS))

    with pytest.raises(lightning_resume.Crash, match="stopped after step 10"):
        lightning_resume.train(data, str(cut), epochs=2, crash_at=10)
    before = lines(cut / "seen.txt")
    assert before == want[:10]
    (cut / "seen.txt").unlink()
    lightning_resume.train(data, str(cut), epochs=2, resume=str(cut / "step=8.ckpt"))
    assert before[:8] + lines(cut / "seen.txt") == want


def test_a_plain_loop_resumes_from_its_torch_save_checkpoint(data: str, tmp_path: Path) -> None:
    plain_resume = example("plain_resume")
    whole, cut = tmp_path / "whole.pt", tmp_path / "cut.pt"
    assert plain_resume.train(data, str(whole), epochs=2) == 2 * STEPS_PER_EPOCH
    want = lines(tmp_path / "whole.pt.seen")

    # Stopped after step 22 (epoch 1), last checkpoint at step 20.
    with pytest.raises(plain_resume.Crash, match="stopped after step 22"):
        plain_resume.train(data, str(cut), epochs=2, crash_at=22)
    seen = tmp_path / "cut.pt.seen"
    before = lines(seen)
    seen.unlink()
    assert plain_resume.train(data, str(cut), epochs=2) == 2 * STEPS_PER_EPOCH - 20
    assert before[:20] + lines(seen) == want
    assert not (tmp_path / "cut.pt.tmp").exists()
