"""A plain training loop that checkpoints model, optimizer and loader with ``torch.save`` and
resumes mid-epoch exactly where it stopped.

    python examples/plain_resume.py DATA_DIR CKPT [--crash-at 10] [--epochs 2]

Every ``--every`` steps the loop writes ``{"model", "optim", "loader", "step"}`` to ``CKPT``
atomically (a temporary file in the same directory, then ``os.replace``), so a kill during the
write leaves the previous checkpoint whole. Started again with the same ``CKPT``, it loads that
state and continues: ``loader.load_state_dict`` makes the next pass deliver exactly the batches
of the epoch that were not trained on before the checkpoint, then the later epochs.

The ids trained on are appended, one line per step, to ``CKPT.seen``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import zenith
from torch import nn
from zenith.torch import DataLoader


class Crash(RuntimeError):
    """Raised to stop a run the way a killed job stops."""


def save_atomically(state: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(
    data_dir: str,
    ckpt: str,
    *,
    epochs: int = 2,
    every: int = 4,
    crash_at: int | None = None,
    batch_size: int = 64,
    classes: int = 10,
) -> int:
    """Trains for ``epochs`` from the checkpoint at ``ckpt`` if there is one; returns the
    steps taken in this run."""
    path = Path(ckpt)
    names = zenith.info(data_dir, verbose=False)["schema"].names
    features = [n for n in names if n.startswith("f")]
    loader = DataLoader(
        data_dir,
        batch_size=batch_size,
        shuffle=True,
        seed=0,
        columns={"id": "id", "x": features, "y": "label"},
    )
    model = nn.Linear(len(features), classes)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    step = 0
    if path.exists():
        state = torch.load(path)
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        loader.load_state_dict(state["loader"])
        step = state["step"]
    taken = 0
    seen = path.with_name(path.name + ".seen")
    while loader.epoch < epochs:
        for batch in loader:
            loss = nn.functional.cross_entropy(model(batch["x"]), batch["y"])
            optim.zero_grad()
            loss.backward()
            optim.step()
            step += 1
            taken += 1
            with seen.open("a") as out:
                out.write(" ".join(str(int(i)) for i in batch["id"]) + "\n")
            if step % every == 0:
                save_atomically(
                    {
                        "model": model.state_dict(),
                        "optim": optim.state_dict(),
                        "loader": loader.state_dict(),
                        "step": step,
                    },
                    path,
                )
            if step == crash_at:
                raise Crash(f"stopped after step {step}")
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("ckpt")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--crash-at", type=int)
    args = parser.parse_args()
    try:
        steps = train(args.data_dir, args.ckpt, epochs=args.epochs, crash_at=args.crash_at)
        print(f"done: {steps} steps")
    except Crash as e:
        print(f"crashed: {e}")


if __name__ == "__main__":
    main()
