"""Epoch-end checkpoints, committed atomically by rank 0, verified on read.

Each checkpoint ``epoch-NNNN.pt`` is written under a temporary name and renamed into
place, with its SHA-256 in ``epoch-NNNN.sha256``; then the ``latest`` pointer is replaced
the same way. A reader never sees a half-written file, and a truncated or corrupted one
is detected by its checksum: the reader warns, naming the file, and falls back to the
previous complete checkpoint. Checkpoints hold only tensors and plain values, read with
``torch.load(weights_only=True)``.

A checkpoint holds the weights, the optimizer state, the epoch and global step, the
history, the torch RNG state and the data-order position (rows consumed per rank); the
training loop derives its shuffling from the seed and that position, so a resumed run
follows the uninterrupted one exactly.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from typing import Any

import torch

logger = logging.getLogger(__name__)
FORMAT = 1
KEEP = 2
_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def commit(directory: str, state: dict[str, Any]) -> str:
    """Write ``state`` (which holds ``epoch``) as the latest checkpoint; return its path."""
    os.makedirs(directory, exist_ok=True)
    buf = io.BytesIO()
    torch.save({**state, "format": FORMAT}, buf)
    data = buf.getvalue()
    name = f"epoch-{int(state['epoch']):04d}.pt"
    path = os.path.join(directory, name)
    _atomic_write(path, data)
    _atomic_write(path[:-3] + ".sha256", hashlib.sha256(data).hexdigest().encode())
    _atomic_write(os.path.join(directory, "latest"), name.encode())
    _prune(directory)
    return path


def _prune(directory: str) -> None:
    for name in _checkpoints(directory)[KEEP:]:
        for suffix in (".pt", ".sha256"):
            try:
                os.remove(os.path.join(directory, name[:-3] + suffix))
            except FileNotFoundError:
                pass


def _checkpoints(directory: str) -> list[str]:
    """Checkpoint file names, newest first."""
    names = [n for n in os.listdir(directory) if _NAME.match(n)]
    return sorted(names, key=lambda n: int(_NAME.match(n).group(1)), reverse=True)  # type: ignore


def _read_verified(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        with open(path[:-3] + ".sha256", encoding="utf-8") as fh:
            expected = fh.read().strip()
    except OSError as exc:
        logger.warning("Checkpoint %s is unreadable (%s); trying the previous one.", path, exc)
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        logger.warning("Checkpoint %s fails its SHA-256 check (truncated or corrupted); "
                       "trying the previous one.", path)
        return None
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def load_latest(directory: str) -> dict[str, Any] | None:
    """The newest checkpoint that passes its checksum, or None when there is none."""
    if not directory or not os.path.isdir(directory):
        return None
    names = _checkpoints(directory)
    pointer = os.path.join(directory, "latest")
    if os.path.exists(pointer):
        with open(pointer, encoding="utf-8") as fh:
            latest = fh.read().strip()
        if latest in names:  # the pointer names the newest committed one
            names.remove(latest)
            names.insert(0, latest)
    for name in names:
        state = _read_verified(os.path.join(directory, name))
        if state is not None:
            return state
    return None
