"""A local Spark Connect server (the one pyspark 4 ships), bound to 127.0.0.1.

Used by the Connect benchmark and by the Connect tests; started with ``spark-submit`` from
the pip package (no ``sbin`` scripts) and stopped by its process id.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import IO


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(log: IO[str], master: str = "local[2]", extra_conf: dict[str, str] | None = None,
          wait_s: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Start a server and wait until it accepts connections: ``(process, sc:// url)``."""
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    port = free_port()
    env = {**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    conf = {"spark.connect.grpc.binding.port": str(port),
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false", **(extra_conf or {})}
    cmd = [os.path.join(home, "bin", "spark-submit"),
           "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
           "--master", master]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    proc = subprocess.Popen(cmd + ["spark-internal"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Spark Connect server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"sc://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"Spark Connect server did not open port {port} in {wait_s:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server started by :func:`start`."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
