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


@pytest.mark.timeout(400)
def test_a_second_fit_into_the_same_checkpoint_dir_trains_its_own_model(binary_df, tmp_path,
                                                                       reference):
    from pyspark.sql import functions as F

    from spark_dl import CheckpointMismatchError

    done = tmp_path / "done"
    done.touch()
    ckpt = str(tmp_path / "ckpt")
    first = _clf(done, maxEpochs=4, checkpointDir=ckpt).fit(binary_df)
    assert first._weights == reference._weights
    flipped = binary_df.withColumn("label", 1.0 - F.col("label"))
    # Fit 2, on flipped labels, dies in epoch 3 and is retried: it must resume from its own
    # epoch-2 checkpoint, not return fit 1's model.
    second = _clf(tmp_path / "marker", maxEpochs=4, maxTrainAttempts=2,
                  checkpointDir=ckpt).fit(flipped)
    assert [h["attempt"] for h in second.history] == [1, 1, 2, 2]
    uninterrupted = _clf(done, maxEpochs=4).fit(flipped)
    assert second._weights == uninterrupted._weights != first._weights
    fits = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert len(fits) == 2 and all(f.startswith("fit-") for f in fits)
    # resume=True with other Params: refused before training, naming both fits.
    other = _clf(done, maxEpochs=4, checkpointDir=ckpt, resume=True)
    other = other.copy({other.learningRate: 0.5})
    with pytest.raises(CheckpointMismatchError, match=r"(?s)fit-\w{16}.*learningRate: 0.01 there"):
        other.fit(binary_df)
