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

Each fit owns its checkpoints. The driver fingerprints a fit (:func:`fingerprint`: the
network, every training Param but the bookkeeping ones, and the data's row counts and
content checksum) and checkpoints into ``<checkpointDir>/fit-<id>``, with ``fit.json``
describing it. Every checkpoint also carries the fingerprint, and a reader asked for one
fit refuses a checkpoint of another (:class:`CheckpointMismatchError`). So a second fit
into the same ``checkpointDir``, a tuning candidate or a cross-validation fold never
resumes from, nor prunes, another's checkpoints. The one exception is deliberate: a
``resume=True`` fit that differs from an earlier one only by a higher ``maxEpochs``
continues that fit's run (:func:`find_resumable`) and checkpoints into its own directory.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import json
import re
from typing import Any

import torch

from spark_dl.errors import CheckpointMismatchError

logger = logging.getLogger(__name__)
FORMAT = 2
KEEP = 2
_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")
_RUN = re.compile(r"^fit-[0-9a-f]{16}$")
DESCRIPTION = "fit.json"


def fingerprint(identity: dict[str, Any]) -> str:
    """Hex SHA-256 of ``identity`` (JSON-serializable) in canonical form."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_dir(base: str, fit_id: str) -> str:
    """The directory under ``checkpointDir`` that the fit ``fit_id`` owns."""
    return os.path.join(base, f"fit-{fit_id[:16]}")


def describe(directory: str, fit_id: str, identity: dict[str, Any]) -> None:
    """Write ``fit.json`` (the fingerprint and what it was computed from) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    text = json.dumps({"fit": fit_id, "identity": identity}, sort_keys=True, default=str,
                      indent=1)
    _atomic_write(os.path.join(directory, DESCRIPTION), text.encode())


def find_resumable(base: str, fit_id: str, identity: dict[str, Any]) -> tuple[str, str] | None:
    """For a ``resume=True`` fit: ``(directory, fit id)`` of the checkpoints to continue from.

    That is this fit's own directory when it holds a checkpoint, else the directory of a
    fit that differs only by a lower ``maxEpochs`` (the same run, asked to go further).
    None when ``base`` holds no checkpoint at all (the fit starts at epoch 0) or is not
    visible here (an executor-only mount: the ranks then read only the fit's own directory).

    Raises
    ------
    CheckpointMismatchError
        ``base`` holds checkpoints, but only of other fits; the message names them and what
        differs.
    """
    if not os.path.isdir(base):
        return None
    own = run_dir(base, fit_id)
    if _checkpoints(own):
        return own, fit_id
    others = [os.path.join(base, n) for n in sorted(os.listdir(base))
              if _RUN.match(n) and _checkpoints(os.path.join(base, n))]
    earlier = []
    for other in others:
        theirs = _read_description(other)
        if theirs is not None and _continues(theirs["identity"], identity):
            earlier.append((_epoch(_checkpoints(other)[0]), other, str(theirs["fit"])))
    if earlier:  # the earlier run of this fit that got furthest
        _, other, their_id = max(earlier)
        return other, their_id
    if _checkpoints(base):
        others.append(base)
    if others:
        raise CheckpointMismatchError(_mismatch_message(base, fit_id, identity, others))
    return None


def _continues(theirs: dict[str, Any], ours: dict[str, Any]) -> bool:
    """Whether ``ours`` is ``theirs`` with the same or a higher ``maxEpochs``."""
    rest = {k for k in set(theirs) | set(ours) if k != "maxEpochs"}
    same = all(theirs.get(k) == ours.get(k) for k in rest)
    return same and int(theirs.get("maxEpochs", 0)) <= int(ours.get("maxEpochs", 0))


def _mismatch_message(base: str, fit_id: str, identity: dict[str, Any],
                      others: list[str]) -> str:
    lines = [f"resume=True, but checkpointDir {base!r} holds checkpoints of other fits only. "
             f"This fit is fit-{fit_id[:16]}; found:"]
    for other in others:
        theirs = _read_description(other)
        if theirs is None:
            lines.append(f"  {other}: written without a fit description (an older spark_dl)")
            continue
        diff = sorted(k for k in set(identity) | set(theirs["identity"])
                      if identity.get(k) != theirs["identity"].get(k))
        shown = ", ".join(f"{k}: {theirs['identity'].get(k)!r} there, {identity.get(k)!r} now"
                          for k in diff[:6])
        lines.append(f"  {other} (fit-{str(theirs['fit'])[:16]}), which differs in {shown}")
    lines.append("Resume with the Params and data of the fit that wrote the checkpoint, or set "
                 "resume=False (or a new checkpointDir) to start from epoch 0.")
    return "\n".join(lines)


def _read_description(directory: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(directory, DESCRIPTION), encoding="utf-8") as fh:
            return json.load(fh)  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


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
    """Keep ``latest`` and the :data:`KEEP` - 1 checkpoints before it; delete the rest.

    Files with a higher epoch number than ``latest`` are stale (an earlier run into the same
    directory went further) and are deleted too.
    """
    latest = _pointer(directory)
    names = _checkpoints(directory)
    if latest not in names:
        return
    epoch = _epoch(latest)
    keep = [n for n in names if _epoch(n) <= epoch][:KEEP]
    for name in names:
        if name in keep:
            continue
        for suffix in (".pt", ".sha256"):
            try:
                os.remove(os.path.join(directory, name[:-3] + suffix))
            except FileNotFoundError:
                pass


def _epoch(name: str) -> int:
    return int(_NAME.match(name).group(1))  # type: ignore[union-attr]


def _pointer(directory: str) -> str | None:
    try:
        with open(os.path.join(directory, "latest"), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _checkpoints(directory: str) -> list[str]:
    """Checkpoint file names, highest epoch first ([] when ``directory`` does not exist)."""
    if not os.path.isdir(directory):
        return []
    names = [n for n in os.listdir(directory) if _NAME.match(n)]
    return sorted(names, key=_epoch, reverse=True)


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


def load_latest(directory: str, fit_id: str | None = None) -> dict[str, Any] | None:
    """The newest checkpoint that passes its checksum, or None when there is none.

    The one ``latest`` names comes first, then the others from the highest epoch down.
    With ``fit_id``, a checkpoint written by another fit raises
    :class:`CheckpointMismatchError` instead of being returned.
    """
    if not directory or not os.path.isdir(directory):
        return None
    names = _checkpoints(directory)
    latest = _pointer(directory)
    if latest in names:
        names.remove(latest)
        names.insert(0, latest)
    for name in names:
        path = os.path.join(directory, name)
        state = _read_verified(path)
        if state is None:
            continue
        if fit_id is not None and state.get("fit") != fit_id:
            raise CheckpointMismatchError(
                f"Checkpoint {path} was written by fit {str(state.get('fit'))[:16]!r}, not by "
                f"this fit ({fit_id[:16]!r}); refusing to resume from another fit's weights."
            )
        return state
    return None
