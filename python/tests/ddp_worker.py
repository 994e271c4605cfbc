"""Run under torchrun: each rank iterates one epoch of zenith.torch.DataLoader and the ranks'
sample ids are gathered to rank 0, which writes them to the file given as argv[2]."""

import json
import sys

import torch
import torch.distributed as dist

from zenith.torch import DataLoader


def main() -> None:
    dist.init_process_group("gloo")
    dl = DataLoader(sys.argv[1], batch_size=32, shuffle=True, seed=5)
    ids = torch.cat([batch["id"] for batch in dl]).tolist()
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, {"rank": dl.rank, "world": dl.world_size, "ids": ids, "len": len(dl)})
    if dist.get_rank() == 0:
        with open(sys.argv[2], "w") as f:
            json.dump(gathered, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
