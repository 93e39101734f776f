"""A real Spark standalone cluster on 127.0.0.1: a master and two workers, started from the
pyspark package's own launcher (no Docker), driven by spark-submit.

- fit with 2 processes on the executors, then a transform there while one worker is killed:
  the job completes and every row is scored exactly once;
- a model saved by one spark-submit process loads in another and predicts identically.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pyspark
import pytest

pytestmark = pytest.mark.slow
SPARK_HOME = os.path.dirname(pyspark.__file__)
HELPERS = os.path.join(os.path.dirname(__file__), "..", "helpers")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp) -> dict:
    return {**os.environ, "SPARK_HOME": SPARK_HOME, "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_WORKER_DIR": str(tmp / "work"), "SPARK_LOG_DIR": str(tmp / "logs"),
            "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


def _start(cmd, env, log):
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as resp:
            return int(json.load(resp).get("aliveworkers", 0))
    except OSError:
        return 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    env, spark_class = _env(tmp), os.path.join(SPARK_HOME, "bin", "spark-class")
    port, ui = _port(), _port()
    procs = [_start([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(port), "--webui-port", str(ui)], env, tmp / "master.log")]
    for i in range(2):
        procs.append(_start([spark_class, "org.apache.spark.deploy.worker.Worker",
                             f"spark://127.0.0.1:{port}", "--host", "127.0.0.1", "--cores", "1",
                             "--memory", "2g", "--webui-port", str(_port())], env,
                            tmp / f"worker{i}.log"))
    try:
        deadline = time.time() + 90
        while _alive_workers(ui) < 2:
            assert time.time() < deadline, "the standalone cluster did not come up"
            time.sleep(1)
        yield {"url": f"spark://127.0.0.1:{port}", "ui": ui, "workers": procs[1:], "env": env}
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _submit(cluster, mode, out, **popen):
    cmd = [os.path.join(SPARK_HOME, "bin", "spark-submit"), "--master", cluster["url"],
           "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.host=127.0.0.1",
           "--conf", "spark.task.maxFailures=4", "--conf", "spark.executor.memory=1g",
           os.path.join(HELPERS, "cluster_job.py"), mode, str(out)]
    return subprocess.Popen(cmd, env=cluster["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


@pytest.mark.timeout(600)
def test_cluster_train_score_kill_worker_and_reload(cluster, tmp_path, spark):
    job = _submit(cluster, "train", tmp_path)
    lines, victim = [], cluster["workers"][1]
    for line in job.stdout:
        lines.append(line)
        if "SCORING" in line:
            time.sleep(1.5)  # let scoring tasks start on both executors
            os.killpg(victim.pid, signal.SIGKILL)  # the worker and its executor die
            victim.wait(timeout=30)
            break
    lines += job.stdout.readlines()
    assert job.wait() == 0, "".join(lines[-60:])
    assert victim.returncode == -signal.SIGKILL, "the worker was not killed mid-scoring"
    lost = [ln for ln in lines if "Lost executor" in ln or "ExecutorLost" in ln or "Lost task" in ln]
    assert lost, "the driver never saw the executor go: the kill did not hit a running job\n" + \
        "".join(lines[-40:])
    stats = json.load(open(tmp_path / "train.json"))
    n = stats["n"]
    assert stats["rows"] == n and stats["ids"] == n and stats["id_sum"] == n * (n - 1) // 2
    assert stats["epochs"] == 2

    # A second spark-submit process (one worker left) loads the model and predicts the same.
    again = _submit(cluster, "score", tmp_path)
    out = again.communicate()[0]
    assert again.returncode == 0, out[-4000:]
    first = spark.read.parquet(str(tmp_path / "first")).orderBy("id").collect()
    second = spark.read.parquet(str(tmp_path / "again")).orderBy("id").collect()
    assert [r.probability for r in first] == [r.probability for r in second]
