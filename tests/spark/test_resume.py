"""Auto-resume: a killed training process is retried from the latest checkpoint, exactly."""

from __future__ import annotations

import pytest

from spark_dl import TorchClassifier, TrainingFailedError

pytestmark = pytest.mark.slow
STEPS_PER_EPOCH = 13  # 400 rows, batchSize 32, one process


def _clf(marker, **kw):
    return TorchClassifier(model="netlib:CrashOnce", batchSize=32, learningRate=0.01, seed=9,
                           modelParams={"marker": str(marker),
                                        "crash_after": 2 * STEPS_PER_EPOCH + 3}, **kw)


@pytest.fixture(scope="module")
def reference(binary_df, tmp_path_factory):
    marker = tmp_path_factory.mktemp("ref") / "marker"
    marker.touch()  # already "crashed": trains straight through
    return _clf(marker, maxEpochs=4).fit(binary_df)


@pytest.mark.timeout(300)
def test_killed_rank_resumes_from_checkpoint_and_equals_uninterrupted(binary_df, tmp_path,
                                                                      reference):
    model = _clf(tmp_path / "marker", maxEpochs=4, maxTrainAttempts=2,
                 checkpointDir=str(tmp_path / "ckpt")).fit(binary_df)
    assert (tmp_path / "marker").exists()  # the first attempt really died in epoch 3
    assert [(h["epoch"], h["attempt"]) for h in model.history] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert model._weights == reference._weights


@pytest.mark.timeout(300)
def test_retries_resume_without_a_checkpoint_dir_on_the_driver(binary_df, tmp_path, reference):
    model = _clf(tmp_path / "marker", maxEpochs=4, maxTrainAttempts=2).fit(binary_df)
    assert [h["attempt"] for h in model.history] == [1, 1, 2, 2]
    assert model._weights == reference._weights


@pytest.mark.timeout(300)
def test_second_fit_with_resume_continues(binary_df, tmp_path, reference):
    marker = tmp_path / "marker"
    marker.touch()
    ckpt = str(tmp_path / "ckpt")
    _clf(marker, maxEpochs=2, checkpointDir=ckpt).fit(binary_df)
    model = _clf(marker, maxEpochs=4, checkpointDir=ckpt, resume=True).fit(binary_df)
    assert [h["epoch"] for h in model.history] == [1, 2, 3, 4]
    assert model._weights == reference._weights


@pytest.mark.timeout(300)
def test_out_of_attempts_says_so_with_the_traceback(binary_df):
    clf = TorchClassifier(model="netlib:FailOnRank1", numProcesses=2, maxTrainAttempts=2,
                          maxEpochs=1, batchSize=16)
    with pytest.raises(TrainingFailedError, match="all 2 attempt") as info:
        clf.fit(binary_df)
    assert "deliberate failure on rank 1" in str(info.value)
