"""Epoch-end checkpoints, committed atomically by rank 0.

Each checkpoint is written under a temporary name and renamed into place, then a
``latest`` pointer file is replaced the same way, so a reader never sees a half-written
file. Checkpoints hold only tensors and plain values: ``torch.load(weights_only=True)``
reads them.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def _atomic_write(path: str, write: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def commit(directory: str, epoch: int, module: torch.nn.Module, optimizer: Any,
           history: list[dict[str, Any]]) -> str:
    """Write ``epoch-NNNN.pt`` and point ``latest`` at it; return the checkpoint path."""
    os.makedirs(directory, exist_ok=True)
    name = f"epoch-{epoch:04d}.pt"
    state = {
        "epoch": epoch,
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
    }
    _atomic_write(os.path.join(directory, name), lambda p: torch.save(state, p))

    def write_pointer(p: str) -> None:
        with open(p, "w", encoding="utf-8") as fh:
            fh.write(name + "\n")

    _atomic_write(os.path.join(directory, "latest"), write_pointer)
    return os.path.join(directory, name)


def load_latest(directory: str) -> dict[str, Any] | None:
    """The checkpoint ``latest`` points to, loaded with ``weights_only=True``; None if absent."""
    pointer = os.path.join(directory, "latest")
    if not os.path.exists(pointer):
        return None
    with open(pointer, encoding="utf-8") as fh:
        name = fh.read().strip()
    return torch.load(os.path.join(directory, name), weights_only=True, map_location="cpu")
