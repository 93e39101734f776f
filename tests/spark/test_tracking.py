"""Tracking: TensorBoard events read back with TensorBoard's own reader, schedules in a fit."""

from __future__ import annotations

import os

import pytest

from spark_dl import TorchClassifier

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


@pytest.fixture(scope="module")
def boarded_fit(binary_df, tmp_path_factory):
    """One fit with a one-cycle schedule, validation and TensorBoard on (shared, read-only)."""
    logdir = tmp_path_factory.mktemp("tb")
    clf = TorchClassifier(modelParams={"hidden_layers": [8]}, maxEpochs=3, batchSize=32,
                          learningRate=0.02, validationFraction=0.2, seed=4,
                          lrSchedule="onecycle", warmupEpochs=1.0, tensorboardDir=str(logdir))
    return clf.fit(binary_df), logdir


def read_run(logdir):
    (run,) = os.listdir(logdir)
    assert run.startswith("TorchClassifier-")
    acc = event_accumulator.EventAccumulator(str(logdir / run),
                                             size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return acc


def test_tensorboard_events_hold_every_step_and_epoch_as_the_history(boarded_fit):
    model, logdir = boarded_fit
    acc = read_run(logdir)
    steps_per_epoch = 320 // 32  # 400 rows, 80 held out for validation, one process
    history = model.history
    loss = acc.Scalars("train/loss")
    lr = acc.Scalars("train/lr")
    assert [e.step for e in loss] == list(range(3 * steps_per_epoch))
    assert [e.step for e in lr] == [e.step for e in loss]
    # One-cycle: the rate peaks at learningRate at the end of the warm-up epoch, then falls.
    rates = [e.value for e in lr]
    assert max(rates) == pytest.approx(0.02) and rates.index(max(rates)) == steps_per_epoch - 1
    assert rates[0] == pytest.approx(0.02 / 25) and rates[-1] < 1e-5
    ends = [h["epoch"] * steps_per_epoch - 1 for h in history]
    for tag, key in [("epoch/train_loss", "train_loss"), ("epoch/val_loss", "val_loss"),
                     ("epoch/val_auc_pr", "val_metric"), ("epoch/lr", "lr"),
                     ("epoch/samples_per_sec", "samples_per_sec")]:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == ends, tag
        assert [e.value for e in events] == pytest.approx([h[key] for h in history], rel=1e-5)
    assert [h["lr"] for h in history] == pytest.approx([rates[s] for s in ends])
    assert acc.Graph() is not None  # the network's graph, written once


@pytest.mark.parametrize("params, match", [
    ({"lrSchedule": "linear"}, r"'lrSchedule' parameter of TorchClassifier must be one of"),
    ({"warmupEpochs": 11.0}, r"'warmupEpochs' parameter of TorchClassifier \(11\) exceeds "
                             r"maxEpochs \(10\)"),
    ({"lrSchedule": "step", "lrScheduleParams": {"gamma": 3}}, r"'gamma' .* \(0, 1\]"),
    ({"tensorboardDir": "s3://bucket/tb"}, r"'tensorboardDir' .* local or mounted path"),
])
def test_bad_schedule_and_tracking_params_fail_before_any_job(binary_df, params, match):
    with pytest.raises(ValueError, match=match):
        TorchClassifier(**params).fit(binary_df)
