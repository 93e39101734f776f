"""The stages from a Spark Connect client: a separate process that has only a remote
session (pyspark switches to Connect mode process-wide, so it cannot share the classic
test session's process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HELPER = os.path.join(os.path.dirname(__file__), "..", "helpers", "connect_job.py")


@pytest.fixture(scope="module")
def connect_run(connect_url, tmp_path_factory):
    work = tmp_path_factory.mktemp("connect_job")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run([sys.executable, HELPER, connect_url, str(work)], env=env,
                          capture_output=True, text=True, timeout=540)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_the_client_has_no_spark_context(connect_run):
    assert connect_run["connect"] is True


def test_readme_quickstart_runs_over_connect(connect_run):
    """The quickstart block of the README, with only its session line made remote: pipeline
    fit, evaluation, atomic save and load of the PipelineModel."""
    assert connect_run["auc"] > 0.85
    assert connect_run["reloaded_equal"] and connect_run["uid_equal"]


def test_executor_ranks_report_through_the_job_not_a_socket(connect_run):
    """Weights, per-rank reports and a failing rank's traceback return from the executors
    in the barrier job's result rows; no rank connects back to the client."""
    rows = [r["train"] for r in connect_run["executors_rows"]]
    assert sum(rows) == 600 and abs(rows[0] - rows[1]) <= 2, rows
    assert connect_run["executors_auc"] > 0.9
    failure = connect_run["failure"]
    assert failure is not None and "Training failed on rank 1 of 2" in failure
    assert "deliberate failure on rank 1 (FailOnRank1)" in failure
    assert 1 in connect_run["failure_ranks"]


def test_large_weights_reach_the_workers_as_a_session_file(connect_run):
    """spark.dl.connect.weightsTransport=file: the workers read the weights from a file
    added to the session, and score as the client's own forward pass does."""
    assert connect_run["file_handle"] == "SessionFile"
    assert connect_run["executors_auc"] > 0.9
    assert connect_run["file_max_diff"] < 1e-5


def test_feature_and_skew_stages_over_connect(connect_run):
    assert connect_run["ids"] == [[2, 3, 2], [4, 0, 0]]
    assert connect_run["pixels"] == 12
    assert connect_run["windows"] == 4
    assert connect_run["rebalanced_rows"] == 600
    assert sum(connect_run["partitions"]) == 600 and len(connect_run["partitions"]) == 4
    assert connect_run["profile_rows"] == 600


def test_cross_validation_over_connect(connect_run):
    assert connect_run["cv_metrics"] == 2
    assert connect_run["cv_best_lr"] == 0.05  # 2 epochs at 0.001 learn next to nothing


def test_recommender_over_connect(connect_run):
    assert connect_run["rec_predictions"] == 3000
    assert connect_run["rec_plans_equal"] and connect_run["rec_item_factors"] == 40


def test_transform_runs_no_job_over_connect(connect_run):
    assert connect_run["marks_after_transform"] == 0
    # the marker does see evaluation
    assert connect_run["marks_after_write"] >= connect_run["test_rows"] > 0


def test_spark_dl_score_and_run_with_remote(connect_run):
    assert connect_run["score_rc"] == 0
    assert connect_run["scored_rows"] == connect_run["test_rows"]
    assert connect_run["run_rc"] == 0 and "auc_pr" in connect_run["job_metrics"]
    assert connect_run["job_top_features"] == [7] * 10  # id, merchant, label, score, 3 features
    assert connect_run["hf_embeddings"] == [[32], 20]  # TextEmbedder from a Connect client


#: Test modules that also run, whole, from a Connect client (the ``spark`` fixture of
#: tests/conftest.py follows SPARK_DL_TEST_REMOTE); each uses only the DataFrame API.
BOTH_WAYS = ["tests/spark/test_streaming.py"]


def test_streaming_tests_pass_from_a_connect_client(connect_url):
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    env = {**os.environ, "SPARK_DL_TEST_REMOTE": connect_url}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *BOTH_WAYS], cwd=root, env=env, capture_output=True, text=True,
                          timeout=540)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout.splitlines()[-1]
