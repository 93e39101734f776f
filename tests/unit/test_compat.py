"""compat.slots_from_conf: the task slots a Connect client reads from the settings, since
transform() may not run the job that would count them; compat.SessionFile: how a scoring
worker reads weights added to a Connect session as a file."""

from __future__ import annotations

import pytest

from spark_dl.compat import SessionFile, slots_from_conf


@pytest.mark.parametrize("conf,slots", [
    ({"spark.master": "local[2]"}, 2),
    ({"spark.master": "local[8, 3]"}, 8),
    ({"spark.master": "local"}, 1),
    ({"spark.master": "local-cluster[3, 2, 1024]"}, 6),
    ({"spark.master": "yarn", "spark.executor.instances": "10", "spark.executor.cores": "4"}, 40),
    ({"spark.master": "local[*]", "spark.sql.shuffle.partitions": "16"}, 16),
    ({"spark.master": "k8s://https://x:443", "spark.executor.instances": "4"}, 200),
])
def test_slots_come_from_the_master_then_the_executors_then_shuffle_partitions(conf, slots):
    assert slots_from_conf(conf.get) == slots


def test_a_session_file_is_read_from_the_workers_directory_and_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a Python worker's working directory is the session's
    (tmp_path / "w.bin").write_bytes(b"weights!")
    assert SessionFile("w.bin", 8, "d").value == b"weights!"
    with pytest.raises(RuntimeError, match="holds 8 bytes; 9 were added"):
        SessionFile("w.bin", 9, "d").value
    with pytest.raises(FileNotFoundError, match="spark.dl.connect.weightsTransport=closure"):
        SessionFile("gone.bin", 8, "d").value
