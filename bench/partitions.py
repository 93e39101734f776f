"""Many small partitions: scoring the same rows in 200 partitions against 2.

- ``t200_tasks``: 200 partitions scored as 200 tasks (``rebalance="never"``): with one
  network build per Python worker (not per partition or task), 100x more tasks should
  cost little. Target: t200_tasks / t2 <= 1.2.
- ``t200_auto``: the same 200 partitions with the default ``rebalance="auto"``, which
  deals the rows round-robin into the default parallelism before scoring (one shuffle):
  what a user gets. Reported beside it, without a target of its own.

Interleaved rounds in an order shuffled every round (seeded), median of per-round ratios
of wall time.

    .venv/bin/python -m bench.partitions [--rows 400000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Any

from bench.harness import Row, get_spark, noop_write
from bench.scoring import fit_model, make_data

TARGET = 1.2


def timed_transform(model: Any, df: Any, rebalance: str = "never") -> float:
    model = model.copy()
    model.set(model.rebalance, rebalance)
    start = time.perf_counter()
    noop_write(model.transform(df))
    return time.perf_counter() - start


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--many", type=int, default=200, help="partitions of the many-case")
    parser.add_argument("--smoke", action="store_true", help="tiny, one round; for the tests")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.rounds, args.many = 4_000, 1, 20
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table, return the results."""
    args = parse_args(argv)
    spark, created = get_spark()
    try:
        few, many = make_data(spark, args.rows, 2), make_data(spark, args.rows, args.many)
        model = fit_model(few, [32])
        assert model.transform(many).agg({"prediction": "count"}).first()[0] == args.rows
        rounds = []
        runs = {"t2": lambda: timed_transform(model, few),
                "t200": lambda: timed_transform(model, many),
                "t200_auto": lambda: timed_transform(model, many, "auto")}
        order = random.Random(0)
        for _ in range(args.rounds + (0 if args.smoke else 1)):  # first round = warm-up
            names = list(runs)
            order.shuffle(names)
            secs = {name: runs[name]() for name in names}
            rounds.append({**secs, "ratio": secs["t200"] / secs["t2"],
                           "ratio_auto": secs["t200_auto"] / secs["t2"]})
    finally:
        if created:
            spark.stop()
    counted = rounds if args.smoke else rounds[1:]
    med = {k: statistics.median(r[k] for r in counted)
           for k in ("t2", "t200", "t200_auto", "ratio", "ratio_auto")}
    ok = med["ratio"] <= TARGET
    print(f"\nrows={args.rows:,} rounds={len(counted)}" + (" (smoke)" if args.smoke else ""))
    print("| partitions | median seconds |\n| ---: | ---: |")
    print(f"| 2 | {med['t2']:.2f} |\n| {args.many} as {args.many} tasks | {med['t200']:.2f} |")
    print(f"| {args.many}, rebalance=auto | {med['t200_auto']:.2f} |")
    print(f"\nt({args.many} tasks)/t(2) median {med['ratio']:.2f} "
          f"(min {min(r['ratio'] for r in counted):.2f}, "
          f"max {max(r['ratio'] for r in counted):.2f}); target <= {TARGET}: "
          f"{'PASS' if ok else 'FAIL'}")
    print(f"t({args.many}, auto)/t(2) median {med['ratio_auto']:.2f}")
    return {"rounds": counted, "median": med, "target": TARGET, "pass": ok}


def rows(r: dict[str, Any]) -> list[Row]:
    """The result rows of :func:`main`'s results (see :class:`bench.harness.Row`)."""
    return [Row("partitions", "t(200 tasks)/t(2)", f"{r['median']['ratio']:.2f}",
                f"<= {r['target']}", r["pass"]),
            Row("partitions", "t(200, rebalance=auto)/t(2)", f"{r['median']['ratio_auto']:.2f}",
                "-", None)]


if __name__ == "__main__":
    sys.exit(0 if main()["pass"] else 1)
