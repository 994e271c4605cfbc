"""A PyTorch Lightning ``LightningDataModule`` over zenith.torch.DataLoader, with a mid-epoch
checkpoint that resumes the loader exactly.

    python examples/lightning_resume.py DATA_DIR CKPT_DIR [--crash-at 10] [--resume CKPT]

Lightning saves the ``state_dict()`` of every train dataloader that has ``state_dict`` and
``load_state_dict`` into its checkpoints (``loops.fit_loop.state_dict.combined_loader``) and
gives it back to ``load_state_dict`` when ``fit(ckpt_path=...)`` resumes, so a run killed
mid-epoch continues with the batches it had not trained on: none lost, none repeated. The
loader has a length, so Lightning does not fetch ahead of the training step and the saved state
is exactly the batches trained on.

``DATA_DIR`` holds Parquet files with an ``id`` column, float feature columns ``f0..`` and an
int64 ``label``. ``--crash-at N`` raises after training step N (a stand-in for a killed job);
``--resume`` continues from a checkpoint. The ids trained on are appended, one line per step, to
``CKPT_DIR/seen.txt``, which is what the test compares with an uninterrupted run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import zenith
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from zenith.torch import DataLoader


class Crash(RuntimeError):
    """Raised to stop a run the way a killed job stops."""


class ZenithData(pl.LightningDataModule):
    """The train split of a Parquet directory, shuffled by Zenith."""

    def __init__(self, data_dir: str, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.seed = seed
        names = zenith.info(data_dir, verbose=False)["schema"].names
        self.features = [n for n in names if n.startswith("f")]

    def train_dataloader(self) -> DataLoader:
        # rank and world size come from torch.distributed when Lightning runs DDP.
        return DataLoader(
            self.data_dir,
            batch_size=self.batch_size,
            shuffle=True,
            seed=self.seed,
            columns={"id": "id", "x": self.features, "y": "label"},
        )


class Classifier(pl.LightningModule):
    """A linear classifier that logs the ids of every batch it trains on."""

    def __init__(self, features: int, classes: int, seen: Path) -> None:
        super().__init__()
        self.layer = nn.Linear(features, classes)
        self.seen = seen

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        with self.seen.open("a") as out:
            out.write(" ".join(str(int(i)) for i in batch["id"]) + "\n")
        loss = nn.functional.cross_entropy(self.layer(batch["x"]), batch["y"])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class CrashAt(Callback):
    """Raises ``Crash`` after the given global step (its checkpoint, if due, is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"stopped after step {self.step}")


def train(
    data_dir: str,
    ckpt_dir: str,
    *,
    epochs: int = 2,
    every: int = 4,
    crash_at: int | None = None,
    resume: str | None = None,
    classes: int = 10,
) -> pl.Trainer:
    """Fits the classifier; checkpoints every ``every`` steps (``step=N.ckpt`` files)."""
    Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
    data = ZenithData(data_dir)
    model = Classifier(len(data.features), classes, Path(ckpt_dir) / "seen.txt")
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=ckpt_dir, filename="{step}", every_n_train_steps=every, save_top_k=-1
        )
    ]
    if crash_at is not None:
        callbacks.append(CrashAt(crash_at))
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(model, datamodule=data, ckpt_path=resume)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("ckpt_dir")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--crash-at", type=int)
    parser.add_argument("--resume")
    args = parser.parse_args()
    try:
        train(
            args.data_dir,
            args.ckpt_dir,
            epochs=args.epochs,
            crash_at=args.crash_at,
            resume=args.resume,
        )
    except Crash as e:
        print(f"crashed: {e}")


if __name__ == "__main__":
    main()
