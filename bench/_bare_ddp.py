"""The baseline for bench/training.py: a bare torchrun DDP script, data held as tensors.

Run by ``torchrun --standalone --nproc_per_node=N bench/_bare_ddp.py ROWS FEATURES EPOCHS
BATCH OUT_JSON LAUNCHED_AT``. Each rank trains the same MLP on its contiguous half of the same
data (generated from a seed; a contiguous tensor, as the fastest hand-written loop holds
it), with the same optimizer and batch size as spark_dl's run; rank 0 writes the time of
its first optimizer step and its per-epoch seconds.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from spark_dl.models.mlp import MLP


def main() -> None:
    rows, features, epochs, batch = (int(a) for a in sys.argv[1:5])
    out_path = sys.argv[5]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(0)
    full = torch.from_numpy(rng.normal(size=(rows, features)).astype(np.float32))
    share = -(-rows // world)
    X = full[rank * share:(rank + 1) * share].contiguous()
    y = (X[:, 0] + X[:, 1] > 0).long()
    torch.manual_seed(0)
    model = DDP(MLP(features, 2, hidden_layers=[64]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = -(-len(X) // batch)
    first_step, epoch_seconds = None, []
    gen = torch.Generator().manual_seed(rank)
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(X), generator=gen)
        for s in range(steps):
            idx = perm[s * batch:(s + 1) * batch]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
            if first_step is None:
                first_step = time.time()
        epoch_seconds.append(time.perf_counter() - t0)
    if rank == 0:
        with open(out_path, "w", encoding="utf-8") as fh:
            json.dump({"first_step": first_step, "epoch_seconds": epoch_seconds,
                       "rows_per_epoch": steps * batch * world}, fh)
    dist.barrier()  # no rank tears the group down while another still writes
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
