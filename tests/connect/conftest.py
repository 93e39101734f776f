"""A local Spark Connect server (``bench/connect_server.py``), bound to 127.0.0.1, started
once for test_connect.py and stopped by its process id when that module ends (an idle
server still costs a tenth of a core, which the rest of the suite wants)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    pytest.importorskip("grpc", reason="Spark Connect needs the spark-dl[connect] extra")
    from bench import connect_server

    log = tmp_path_factory.mktemp("connect") / "server.log"
    with open(log, "w") as out:
        try:
            proc, url = connect_server.start(out, extra_conf={"spark.sql.shuffle.partitions": "4"})
        except RuntimeError as exc:
            pytest.fail(f"{exc}: {log.read_text()[-3000:]}")
    try:
        yield url
    finally:
        connect_server.stop(proc)
