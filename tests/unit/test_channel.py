"""The driver refuses a model unless every rank reported finishing (real TCPStore, no driver
socket: outcomes travel through the ranks' own store and rank 0's payload)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from torch.distributed import TCPStore

from spark_dl.errors import TrainingFailedError
from spark_dl.training.channel import RankChannel, deliver, read_payload
from spark_dl.training.distributor import verify

RESULT = {"weights": b"x", "history": [{"epoch": 1}], "steps_per_epoch": 5}


@pytest.fixture()
def group_store(monkeypatch):
    """The store torchrun's first agent serves to its ranks."""
    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                     timeout=timedelta(seconds=10))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(store.port))
    return store


def _ok(steps=10):
    return {"status": "ok", "world_size": 2, "steps": steps, "epochs": 1,
            "rows": {"train": 4, "validation": 0}}


def _payload(outcome1, outcome0=None, wait_s=5.0, result=RESULT, result_dir=None):
    if outcome1 is not None:
        assert RankChannel(1, 2, wait_s).exchange(outcome1) == {}
    outcomes = RankChannel(0, 2, wait_s).exchange(outcome0 or _ok())
    returned = deliver(result_dir, result, outcomes)
    return read_payload(returned, result_dir)


def test_all_ranks_reported_passes(group_store):
    result = verify(_payload(_ok()), 2)
    assert result["weights"] == b"x" and result["history"] == [{"epoch": 1}]
    assert result["rows_per_rank"] == [{"train": 4, "validation": 0}] * 2


def test_driver_local_payload_goes_through_a_folder(group_store, tmp_path):
    payload = _payload(_ok(), result_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "weights.safetensors"]
    assert verify(payload, 2)["weights"] == b"x"


def test_nothing_delivered_is_refused(tmp_path):
    with pytest.raises(TrainingFailedError, match="rank 0 delivered no result"):
        verify(read_payload(None, str(tmp_path)), 2)


def test_missing_rank_is_refused_even_if_rank0_returned(group_store):
    with pytest.raises(TrainingFailedError, match=r"rank\(s\) \[1\] of 2 never reported"):
        verify(_payload(None, wait_s=0.3), 2)


def test_unequal_steps_are_refused(group_store):
    with pytest.raises(TrainingFailedError, match=r"steps per rank \[10, 9\]"):
        verify(_payload(_ok(steps=9)), 2)


def test_reported_error_wins_over_success(group_store):
    error = {"status": "error", "traceback": "Traceback ...\nKeyError: 'boom'", "time": 1.0}
    with pytest.raises(TrainingFailedError, match="(?s)rank 1 of 2.*KeyError: 'boom'") as info:
        verify(_payload(error, result=None), 2)
    assert "boom" in info.value.rank_errors[1]


def test_earliest_error_is_named_first(group_store):
    late = {"status": "error", "traceback": "RuntimeError: Connection closed by peer",
            "time": 2.0}
    early = {"status": "error", "traceback": "ValueError: the real cause", "time": 1.0}
    with pytest.raises(TrainingFailedError,
                       match="(?s)rank 1 of 2. Ranks \\[0\\] failed after it.*the real cause"):
        verify(_payload(early, outcome0=late, result=None), 2)
