"""The driver refuses a model unless every rank reported finishing (real TCPStore)."""

from __future__ import annotations

import pytest

from spark_dl.errors import TrainingFailedError
from spark_dl.training.distributor import _verify
from spark_dl.training.channel import ReportClient, ReportServer

RESULT = {"weights": b"x", "history": []}


def test_all_ranks_reported_passes():
    server = ReportServer("127.0.0.1")
    for rank in range(2):
        ReportClient(server.address, rank).done(world_size=2, steps=10, epochs=1, status="ok")
    _verify(server, 2, RESULT)


def test_missing_rank_is_refused_even_if_rank0_returned():
    server = ReportServer("127.0.0.1")
    ReportClient(server.address, 0).done(world_size=2, steps=10, epochs=1, status="ok")
    with pytest.raises(TrainingFailedError, match=r"rank\(s\) \[1\] of 2 never reported"):
        _verify(server, 2, RESULT)


def test_unequal_steps_are_refused():
    server = ReportServer("127.0.0.1")
    ReportClient(server.address, 0).done(world_size=2, steps=10, epochs=1, status="ok")
    ReportClient(server.address, 1).done(world_size=2, steps=9, epochs=1, status="ok")
    with pytest.raises(TrainingFailedError, match=r"steps per rank \[10, 9\]"):
        _verify(server, 2, RESULT)


def test_reported_error_wins_over_success():
    server = ReportServer("127.0.0.1")
    ReportClient(server.address, 0).done(world_size=2, steps=10, epochs=1, status="ok")
    ReportClient(server.address, 1).error("Traceback ...\nKeyError: 'boom'")
    with pytest.raises(TrainingFailedError, match="(?s)rank 1 of 2.*KeyError: 'boom'") as info:
        _verify(server, 2, RESULT)
    assert "boom" in info.value.rank_errors[1]
