"""Checkpoints: atomic commits, checksums, and falling back past a corrupted file."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from spark_dl.errors import CheckpointMismatchError
from spark_dl.training import checkpoint


def _state(epoch: int) -> dict:
    return {"epoch": epoch, "model": {"w": torch.full((3,), float(epoch))}, "history": []}


def test_latest_is_the_newest_commit(tmp_path):
    for e in (1, 2, 3):
        checkpoint.commit(str(tmp_path), _state(e))
    assert checkpoint.load_latest(str(tmp_path))["epoch"] == 3
    # only the last two are kept, and no temporary files are left behind
    assert sorted(os.listdir(tmp_path)) == ["epoch-0002.pt", "epoch-0002.sha256",
                                           "epoch-0003.pt", "epoch-0003.sha256", "latest"]


def test_truncated_checkpoint_falls_back_with_a_warning(tmp_path, caplog):
    for e in (1, 2):
        checkpoint.commit(str(tmp_path), _state(e))
    newest = tmp_path / "epoch-0002.pt"
    newest.write_bytes(newest.read_bytes()[:50])
    with caplog.at_level(logging.WARNING):
        state = checkpoint.load_latest(str(tmp_path))
    assert state["epoch"] == 1
    assert "epoch-0002.pt" in caplog.text and "SHA-256" in caplog.text


def test_no_checkpoint_is_none(tmp_path):
    assert checkpoint.load_latest(str(tmp_path)) is None
    assert checkpoint.load_latest(str(tmp_path / "missing")) is None


def test_pruning_follows_latest_not_the_highest_number(tmp_path):
    # An earlier run went to epoch 5 in this directory; a new run then commits epoch 1.
    for e in (1, 2, 3, 4, 5):
        checkpoint.commit(str(tmp_path), _state(e))
    checkpoint.commit(str(tmp_path), _state(1))
    assert checkpoint.load_latest(str(tmp_path))["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["epoch-0001.pt", "epoch-0001.sha256", "latest"]


def test_a_checkpoint_of_another_fit_is_refused(tmp_path):
    checkpoint.commit(str(tmp_path), {**_state(1), "fit": "a" * 64})
    assert checkpoint.load_latest(str(tmp_path), "a" * 64)["epoch"] == 1
    with pytest.raises(CheckpointMismatchError, match="aaaaaaaaaaaaaaaa.*bbbbbbbbbbbbbbbb"):
        checkpoint.load_latest(str(tmp_path), "b" * 64)


def _fit(base, identity, epochs=1):
    fit_id = checkpoint.fingerprint(identity)
    directory = checkpoint.run_dir(str(base), fit_id)
    checkpoint.describe(directory, fit_id, identity)
    for e in range(1, epochs + 1):
        checkpoint.commit(directory, {**_state(e), "fit": fit_id})
    return fit_id, directory


def test_resume_finds_its_own_fit_or_an_earlier_run_with_fewer_epochs(tmp_path):
    ident = {"learningRate": 0.01, "maxEpochs": 2, "rows": 400}
    assert checkpoint.find_resumable(str(tmp_path), "0" * 64, ident) is None  # nothing yet
    fit_id, directory = _fit(tmp_path, ident, epochs=2)
    assert checkpoint.find_resumable(str(tmp_path), fit_id, ident) == (directory, fit_id)
    longer = {**ident, "maxEpochs": 4}
    assert checkpoint.find_resumable(
        str(tmp_path), checkpoint.fingerprint(longer), longer) == (directory, fit_id)


def test_resume_refuses_other_fits_naming_both_and_the_difference(tmp_path):
    ident = {"learningRate": 0.01, "maxEpochs": 2, "rows": 400}
    theirs, _ = _fit(tmp_path, ident)
    ours = {**ident, "learningRate": 0.1}
    ours_id = checkpoint.fingerprint(ours)
    with pytest.raises(CheckpointMismatchError) as info:
        checkpoint.find_resumable(str(tmp_path), ours_id, ours)
    text = str(info.value)
    assert f"fit-{theirs[:16]}" in text and f"fit-{ours_id[:16]}" in text
    assert "learningRate: 0.01 there, 0.1 now" in text
    shorter = {**ident, "maxEpochs": 1}  # fewer epochs than the checkpoint: not a continuation
    with pytest.raises(CheckpointMismatchError):
        checkpoint.find_resumable(str(tmp_path), checkpoint.fingerprint(shorter), shorter)


def test_resume_continues_the_earlier_run_that_got_furthest(tmp_path):
    ident = {"learningRate": 0.01, "rows": 400}
    _fit(tmp_path, {**ident, "maxEpochs": 5}, epochs=5)
    ten_id, ten_dir = _fit(tmp_path, {**ident, "maxEpochs": 10}, epochs=10)
    twenty = {**ident, "maxEpochs": 20}
    assert checkpoint.find_resumable(str(tmp_path), checkpoint.fingerprint(twenty),
                                     twenty) == (ten_dir, ten_id)
