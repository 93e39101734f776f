"""What Spark Connect costs: the same fit and transform from a Connect client and a classic one.

Two client processes (pyspark is in Connect mode process-wide, so one process cannot hold
both kinds of session): a classic ``local[2]`` session, and a Connect session to a local
server that is itself ``local[2]`` with the same settings. Both read the same Parquet file
and run the same work on command:

- ``fit``: ``TorchClassifier`` (MLP 16 -> 64 -> 2, driver-local ranks, the default) on the
  file; under Connect the training rows travel to the client over gRPC instead of py4j.
- ``transform``: the fitted model scores the file into Spark's ``noop`` sink.

The arms are interleaved (the order reversed every other round, a warm-up not counted); the
figures are medians of per-round ratios Connect / classic. Informational: no target (Connect
is expected to cost something; the question is how much).

    .venv/bin/python -m bench.connect [--rows 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.harness import Row, interleave, summarize

CONF = {"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "3g",
        "spark.ui.showConsoleProgress": "false"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny and cold: checks it runs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # 'classic' or an sc:// url
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.epochs, args.rounds, args.warmup = 2000, 1, 1, 0
    return args


# ---------------------------------------------------------------- the client processes
def _session(target: str) -> Any:
    from pyspark.sql import SparkSession

    if target == "classic":
        builder = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
        builder = builder.config("spark.driver.host", "127.0.0.1")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1")
        for key, value in CONF.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()
    return SparkSession.builder.remote(target).getOrCreate()


def worker(target: str, data: str, epochs: int) -> None:
    """Answer ``fit`` / ``transform`` / ``rows`` / ``quit`` lines on stdin, one JSON line each."""
    from spark_dl import TorchClassifier

    spark = _session(target)
    df = spark.read.parquet(data)
    clf = TorchClassifier(modelParams={"hidden_layers": [64]}, maxEpochs=epochs,
                          batchSize=256, seed=0)
    model = None
    for line in sys.stdin:
        cmd = line.strip()
        start = time.perf_counter()
        if cmd == "fit":
            model = clf.fit(df)
            reply: dict[str, Any] = {"loss": model.history[-1]["train_loss"]}
        elif cmd == "transform" and model is not None:
            model.transform(df).write.format("noop").mode("overwrite").save()
            reply = {}
        elif cmd == "rows" and model is not None:
            reply = {"rows": model.transform(df).count()}
        else:
            break
        reply["secs"] = time.perf_counter() - start
        print("REPLY " + json.dumps(reply), flush=True)
    spark.stop()


class Client:
    """A worker process and the commands it runs."""

    def __init__(self, target: str, data: str, epochs: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.connect", "--worker", target, "--data", data,
             "--epochs", str(epochs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            stderr=subprocess.DEVNULL,
        )

    def ask(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("REPLY "):
                return json.loads(line[len("REPLY "):])
        raise RuntimeError(f"the {cmd!r} worker exited with code {self.proc.wait()}")

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=120)


# ---------------------------------------------------------------- the orchestrator
def _write_data(path: str, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 16)).astype(np.float32)
    y = (X[:, :4].sum(axis=1) > 0).astype(np.float64)
    features = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 16)
    table = pa.table({"features": pa.array(features.to_pylist(), pa.list_(pa.float32())),
                      "label": y})
    pq.write_table(table, path, row_group_size=max(rows // 8, 1))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.data, args.epochs)
        return {}
    from bench import connect_server

    os.environ.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
                      PYSPARK_DRIVER_PYTHON=sys.executable)
    with tempfile.TemporaryDirectory(prefix="spark_dl-bench-connect-") as tmp:
        data = os.path.join(tmp, "data.parquet")
        _write_data(data, args.rows)
        with open(os.path.join(tmp, "server.log"), "w") as log:
            server, url = connect_server.start(log, extra_conf=CONF)
        clients = {}
        try:
            clients = {"classic": Client("classic", data, args.epochs),
                       "connect": Client(url, data, args.epochs)}
            counts = {}
            for name, client in clients.items():  # each arm fits once and scores every row
                client.ask("fit")
                counts[name] = client.ask("rows")["rows"]
            assert counts == {"classic": args.rows, "connect": args.rows}, counts
            runs = {f"{step}_{name}": (lambda c=c, s=step: c.ask(s))
                    for step in ("fit", "transform") for name, c in clients.items()}
            per_round, _ = interleave(
                runs, args.rounds, args.warmup, "connect",
                {"fit": ("fit_connect", "fit_classic"),
                 "transform": ("transform_connect", "transform_classic")})
        finally:
            for client in clients.values():
                client.close()
            connect_server.stop(server)
    return {"args": vars(args), "summary": summarize(per_round)}


def rows(result: dict[str, Any]) -> list[Row]:
    """Connect / classic for fit and for transform (informational)."""
    s, a = result["summary"], result["args"]
    note = f"{a['rows']} rows, MLP 16-64-2, {a['epochs']} epochs, {a['rounds']} rounds"
    return [Row("connect", f"{step} Connect / classic", f"{s[step]['median']:.2f}x",
                "informational", None,
                f"{note}; classic {s[step + '_classic']['median']:.1f}s, Connect "
                f"{s[step + '_connect']['median']:.1f}s")
            for step in ("fit", "transform")]


if __name__ == "__main__":
    out = main()
    if out:
        from bench.harness import format_rows

        print(format_rows(rows(out)))
