"""Checkpoints: atomic commits, checksums, and falling back past a corrupted file."""

from __future__ import annotations

import logging
import os

import torch

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
