"""Training benchmark: spark_dl's fit against a bare torchrun DDP script.

Both train the same MLP (64 -> 64 -> 2) with 2 gloo processes on the driver machine, the
same rows, batch size and optimizer; the bare script holds its data as contiguous tensors
in memory (``bench/_bare_ddp.py``). Interleaved rounds, the order alternated (ours then
bare, then bare then ours, ...), medians of per-round ratios.

- throughput: samples/s of steady-state epochs (all but the first); target ours/bare >= 0.9;
- start-up: seconds from ``fit()`` (or the torchrun launch) to the first optimizer step;
  target ours/bare <= 1.5, with ours broken down from ``model.trainingTimings``.

    .venv/bin/python -m bench.training [--rows 200000] [--epochs 4] [--batch 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.harness import Row, get_spark
from bench.scoring import NUM_FEATURES, make_data

HERE = os.path.dirname(os.path.abspath(__file__))

TARGETS = {"throughput": 0.9, "startup": 1.5}


def run_ours(df: Any, args: argparse.Namespace) -> dict[str, Any]:
    from spark_dl import TorchClassifier

    clf = TorchClassifier(numProcesses=2, localMode=True, maxEpochs=args.epochs,
                          batchSize=args.batch, learningRate=1e-3, maxTrainAttempts=1,
                          modelParams={"hidden_layers": [64]})
    model = clf.fit(df)
    steady = [h["samples_per_sec"] for h in model.history[1:]] or [
        model.history[0]["samples_per_sec"]]
    timings = model.trainingTimings
    return {"throughput": statistics.median(steady), "startup": timings["first_step"],
            "timings": timings}


def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bare.json")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", os.path.join(HERE, "_bare_ddp.py"), str(args.rows),
               str(NUM_FEATURES), str(args.epochs), str(args.batch), out]
        launched = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode:
            raise RuntimeError(f"bare torchrun failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        res = json.load(open(out))
    epochs = res["epoch_seconds"][1:] or res["epoch_seconds"]
    return {"throughput": res["rows_per_epoch"] / statistics.median(epochs),
            "startup": res["first_step"] - launched}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny, one round; for the tests")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.epochs, args.rounds = 4_000, 2, 1
    return args


def report(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    med = {}
    for key in ("throughput", "startup"):
        med[f"ours_{key}"] = statistics.median(r["ours"][key] for r in rounds)
        med[f"bare_{key}"] = statistics.median(r["bare"][key] for r in rounds)
        med[f"{key}_ratio"] = statistics.median(r["ours"][key] / r["bare"][key] for r in rounds)
    stages = {k: statistics.median(r["ours"]["timings"][k] for r in rounds)
              for k in rounds[0]["ours"]["timings"]}
    ok_t = med["throughput_ratio"] >= TARGETS["throughput"]
    ok_s = med["startup_ratio"] <= TARGETS["startup"]
    print("| measure | ours | bare torchrun | ours/bare (median) | target | status |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    print(f"| steady-state samples/s | {med['ours_throughput']:,.0f} | "
          f"{med['bare_throughput']:,.0f} | {med['throughput_ratio']:.2f} | >= 0.9 | "
          f"{'PASS' if ok_t else 'FAIL'} |")
    print(f"| seconds to first step | {med['ours_startup']:.1f} | {med['bare_startup']:.1f} | "
          f"{med['startup_ratio']:.2f} | <= 1.5 | {'PASS' if ok_s else 'FAIL'} |")
    print("\nours, seconds since fit() (medians): " +
          ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    return {"median": med, "stages": stages, "pass": ok_t and ok_s}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table, return the results."""
    args = parse_args(argv)
    spark, created = get_spark()
    try:
        df = make_data(spark, args.rows, 4)
        rounds = []
        for i in range(args.rounds + (0 if args.smoke else 1)):  # first round = warm-up
            if i % 2:  # alternate the order, so neither side always runs on a warmer machine
                bare = run_bare(args)
                rounds.append({"bare": bare, "ours": run_ours(df, args)})
            else:
                ours = run_ours(df, args)
                rounds.append({"ours": ours, "bare": run_bare(args)})
    finally:
        if created:
            spark.stop()
    counted = rounds if args.smoke else rounds[1:]
    print(f"\nrows={args.rows:,} epochs={args.epochs} batch={args.batch} processes=2 "
          f"rounds={len(counted)}" + (" (smoke)" if args.smoke else ""))
    return {"rounds": counted, **report(counted)}


def rows(r: dict[str, Any]) -> list[Row]:
    """The result rows of :func:`main`'s results (see :class:`bench.harness.Row`)."""
    m = r["median"]
    return [Row("training", "throughput ours/bare", f"{m['throughput_ratio']:.2f}", ">= 0.9",
                m["throughput_ratio"] >= 0.9),
            Row("training", "start-up ours/bare", f"{m['startup_ratio']:.2f}", "<= 1.5",
                m["startup_ratio"] <= 1.5)]


if __name__ == "__main__":
    sys.exit(0 if main()["pass"] else 1)
