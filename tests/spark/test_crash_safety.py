"""Crashes that must lose nothing: a killed save, a killed scoring worker."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from spark_dl import TorchClassificationModel, TorchClassifier

pytestmark = pytest.mark.slow
HELPERS = os.path.join(os.path.dirname(__file__), "..", "helpers")


def _kill_save_loop_at_random_moments(src, dst, rounds, seed):
    """Run save_loop.py and SIGKILL it (driver and JVM) at random moments of its saves."""
    rng = random.Random(seed)
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, os.path.join(HELPERS, "save_loop.py"), src, dst],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True, text=True)
        try:
            # both kinds of save have completed once: every later kill finds a previous save
            assert "saved 2" in (proc.stdout.readline() + proc.stdout.readline()), \
                "the save loop never saved"
            time.sleep(rng.uniform(0.0, 2.0))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM die mid-save
            proc.wait()
        yield


@pytest.mark.timeout(300)
def test_saves_killed_at_random_moments_stay_loadable(fitted_clf, binary_df, tmp_path):
    """A model saved through its writer, and a PipelineModel through save_atomic, overwritten
    in turn by a process killed at random moments: each still loads and scores as before."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    from spark_dl.persistence import load_atomic

    src, dst = tmp_path / "src", tmp_path / "dst"
    fitted_clf.save(str(src / "model"))
    pm = PipelineModel(stages=[SQLTransformer(statement="SELECT * FROM __THIS__"), fitted_clf])
    pm.save(str(src / "pipeline"))
    expected = fitted_clf.transform(binary_df).select("features", "probability")
    for _ in _kill_save_loop_at_random_moments(str(src), str(dst), 3, 7):
        model = TorchClassificationModel.load(str(dst / "model"))
        pipeline = load_atomic(PipelineModel, str(dst / "pipeline"))
        for loaded in (model, pipeline):
            assert_df_equality(expected,
                               loaded.transform(binary_df).select("features", "probability"),
                               ignore_row_order=True)


def test_interrupted_overwrite_between_renames_loads_the_old_model(fitted_clf, tmp_path, caplog):
    path = str(tmp_path / "m")
    fitted_clf.save(path)
    os.rename(path, path + ".old-deadbeef0000")  # the state a crash between renames leaves
    loaded = TorchClassificationModel.load(path)
    assert loaded._weights == fitted_clf._weights
    assert "interrupted" in caplog.text


def test_save_without_overwrite_refuses_an_existing_path(fitted_clf, tmp_path):
    path = str(tmp_path / "m")
    fitted_clf.save(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        fitted_clf.save(path)


@pytest.mark.timeout(300)
def test_killed_scoring_worker_is_retried_and_every_row_scored_once(spark, binary_df, tmp_path):
    marker = tmp_path / "killed"
    model = TorchClassifier(model="netlib:KillWorkerOnce", modelParams={"marker": str(marker)},
                            maxEpochs=1).fit(binary_df)
    rows = binary_df.withColumn("id", F.monotonically_increasing_id()).repartition(4).cache()
    n = rows.count()
    first = model.transform(rows).select("id", "probability", "prediction").collect()
    assert marker.exists(), "no Python worker was killed"
    ids = [r.id for r in first]
    assert len(ids) == n and len(set(ids)) == n  # every row exactly once
    again = spark.createDataFrame(first)
    assert_df_equality(again, model.transform(rows).select("id", "probability", "prediction"),
                       ignore_row_order=True, ignore_nullable=True)  # same across retry and rerun
