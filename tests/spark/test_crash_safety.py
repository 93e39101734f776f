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


def _kill_save_loop_at_random_moments(src, dst, rounds, seed, *mode):
    """Run save_loop.py and SIGKILL it (driver and JVM) at random moments of its saves."""
    rng = random.Random(seed)
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, os.path.join(HELPERS, "save_loop.py"), src, dst,
                                 *mode], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True, text=True)
        try:
            assert "saved" in proc.stdout.readline(), "the save loop never saved"
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM die mid-save
            proc.wait()
        yield


@pytest.mark.timeout(300)
def test_save_killed_at_random_moments_leaves_a_loadable_model(fitted_clf, binary_df, tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    fitted_clf.save(src)
    expected = fitted_clf.transform(binary_df).select("features", "probability")
    for _ in _kill_save_loop_at_random_moments(src, dst, 3, 7):
        loaded = TorchClassificationModel.load(dst)
        assert_df_equality(expected, loaded.transform(binary_df).select("features", "probability"),
                           ignore_row_order=True)


@pytest.mark.timeout(300)
def test_pipeline_model_save_killed_at_random_moments_stays_loadable(fitted_clf, binary_df,
                                                                     tmp_path):
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    from spark_dl.persistence import load_atomic

    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    pm = PipelineModel(stages=[SQLTransformer(statement="SELECT * FROM __THIS__"), fitted_clf])
    pm.save(src)
    expected = pm.transform(binary_df).select("features", "probability")
    for _ in _kill_save_loop_at_random_moments(src, dst, 2, 11, "pipeline"):
        loaded = load_atomic(PipelineModel, dst)
        assert_df_equality(expected, loaded.transform(binary_df).select("features", "probability"),
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
