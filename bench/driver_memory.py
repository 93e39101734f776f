"""Driver memory of driver-local training (``localMode=True``): streamed shards against one
collected table.

Before issue 15, a driver-local fit collected the prepared rows to the driver as one Arrow
table (``toArrow``) and took each rank's rows from it, so the driver's peak grew with the
data. Now :func:`spark_dl.compat.iter_arrow_batches` streams them batch by batch into the
per-rank shard files. Each arm runs in a fresh Python process (its own ``local[2]``
Spark) on the same Parquet file of ``--rows`` rows x ``--features`` float32 features, and
reports that process's peak resident memory (``VmHWM``; the JVM and the training ranks are
other processes):

* ``table``  -- the earlier code, kept here as the baseline: ``collect_arrow`` then the
  ``r::n`` takes of each rank's rows, written to the same shard files;
* ``stream`` -- the library's :func:`write_local_shards` over ``iter_arrow_batches``;
* ``fit``    -- a whole ``TorchClassifier.fit`` (MLP, one epoch, 2 driver-local ranks),
  with ``--fit``.

Both data arms produce byte-identical shards (checked). Command:
``python -m bench.driver_memory --rows 5000000 --features 64 --fit``; ``--smoke`` is tiny.
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

from bench.harness import Row

ARMS = ("table", "stream")


def _peak_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _session() -> Any:
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "6g").config("spark.driver.maxResultSize", "4g")
            .getOrCreate())


def _prepared(spark: Any, path: str) -> Any:
    from pyspark.sql import functions as F

    from spark_dl.training.data import prepare

    df = spark.read.parquet(path)
    return prepare(df, F.col("features"), "label", None, 0.1, 0)


def _table_shards(prepared: Any, n: int, directory: str) -> list[str]:
    """The code this benchmark replaces: one collected table, then per-rank takes."""
    import numpy as np
    import pyarrow as pa

    from spark_dl.compat import collect_arrow

    table = collect_arrow(prepared)
    paths = []
    for r in range(n):
        shard = table.take(pa.array(np.arange(r, table.num_rows, n, dtype=np.int64)))
        path = os.path.join(directory, f"shard-{r}.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, shard.schema) as writer:
            writer.write_table(shard)
        paths.append(path)
    return paths


def child(arm: str, path: str, ranks: int) -> dict[str, Any]:
    """One arm in this (fresh) process: seconds, peak MiB and a digest of the shards."""
    import hashlib

    import pyarrow as pa

    from spark_dl.compat import iter_arrow_batches
    from spark_dl.training.data import write_local_shards

    spark = _session()
    prepared = _prepared(spark, path)
    base = _peak_mib()
    start = time.perf_counter()
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        peak = 0.0
        if arm == "fit":
            from spark_dl import TorchClassifier

            df = spark.read.parquet(path)
            TorchClassifier(modelParams={"hidden_layers": [32]}, maxEpochs=1, batchSize=4096,
                            numProcesses=ranks, seed=0).fit(df)
        else:
            make = _table_shards if arm == "table" else (
                lambda p, n, d: write_local_shards(iter_arrow_batches(p, d), n, d))
            shards = make(prepared, ranks, tmp)
            peak, seconds = _peak_mib(), time.perf_counter() - start  # before the check
            for shard in shards:
                table = pa.ipc.open_file(pa.memory_map(shard)).read_all()
                digest.update(str(table.num_rows).encode())
                digest.update(table.column("y").to_numpy().tobytes())
        if arm == "fit":
            seconds = time.perf_counter() - start
    spark.stop()
    return {"arm": arm, "seconds": seconds, "peak_mib": peak or _peak_mib(), "before_mib": base,
            "digest": digest.hexdigest()}


def _generate(path: str, rows: int, features: int) -> None:
    from pyspark.sql import functions as F

    spark = _session()
    cols = [F.rand(seed=i).cast("float") for i in range(features)]
    (spark.range(rows, numPartitions=16)
     .select(F.array(*cols).alias("features"), (F.rand(seed=99) > 0.5).cast("double")
             .alias("label"))
     .write.mode("overwrite").parquet(path))
    spark.stop()


def _run_child(arm: str, path: str, ranks: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.driver_memory", "--child", arm,
                          "--path", path, "--ranks", str(ranks)],
                         capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"arm {arm} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fit", action="store_true", help="also a whole fit (minutes)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", choices=(*ARMS, "fit"))
    parser.add_argument("--path")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.path, args.ranks)), flush=True)
        return {}
    if args.smoke:
        args.rows, args.features, args.rounds = 20_000, 8, 1
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-driver-mem-") as tmp:
        path = os.path.join(tmp, "rows.parquet")
        _generate(path, args.rows, args.features)
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
        for r in range(args.rounds):
            for arm in ARMS if r % 2 == 0 else ARMS[::-1]:
                got = _run_child(arm, path, args.ranks)
                runs[arm].append(got)
                print(f"round {r + 1} {arm}: peak {got['peak_mib']:.0f} MiB (before the data "
                      f"step {got['before_mib']:.0f}), {got['seconds']:.1f} s", flush=True)
        fit = _run_child("fit", path, args.ranks) if args.fit else None
        if fit:
            print(f"fit: peak {fit['peak_mib']:.0f} MiB, {fit['seconds']:.1f} s", flush=True)
    same = len({g["digest"] for arm in ARMS for g in runs[arm]}) == 1
    return {"rows": args.rows, "features": args.features, "runs": runs, "fit": fit,
            "identical": same, "smoke": args.smoke}


def rows(result: dict[str, Any]) -> list[Row]:
    """Result rows: peak driver memory of each arm, and their ratio."""
    import statistics

    peak = {arm: statistics.median(g["peak_mib"] for g in result["runs"][arm]) for arm in ARMS}
    data_mib = result["rows"] * (result["features"] * 4 + 17) / 2**20
    smoke = result["smoke"]
    out = [
        Row("driver_memory", f"driver peak, {arm} ({result['rows']:,} x {result['features']})",
            f"{peak[arm]:.0f} MiB", "", None, f"prepared rows {data_mib:.0f} MiB")
        for arm in ARMS
    ]
    growth = peak["stream"] - min(g["before_mib"] for g in result["runs"]["stream"])
    out.append(Row("driver_memory", "stream: peak growth during the data step",
                   f"{growth:.0f} MiB", "< 10% of the data", None if smoke
                   else growth < 0.1 * data_mib, f"shards identical: {result['identical']}"))
    if result["fit"]:
        out.append(Row("driver_memory", "whole fit, driver peak",
                       f"{result['fit']['peak_mib']:.0f} MiB", "", None))
    return out


if __name__ == "__main__":
    res = main()
    if res:
        from bench.harness import format_rows

        print(format_rows(rows(res)))
