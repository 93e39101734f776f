"""Recommender benchmarks: skewed interactions in training, and the two top-k plans.

1. Training time with 1% of users holding 50% of the interactions (B) against the same
   number of interactions spread evenly over the users (A): TorchRecommender, implicit
   feedback, two ranks (``numProcesses=2``, driver-local), the same rows, epochs and
   Params. Target: B/A <= 1.2 (skew must not make a rank the straggler), and both ranks'
   row counts within one row.
2. ``recommendForAllUsers(10)`` with ``recommendStrategy="broadcast"`` against
   ``"blocked"`` on the same fitted model (informational: which plan ``auto`` should pick).

Run: ``python -m bench.recommendation`` (``--smoke`` for a tiny run). Arms interleave
(order alternated every round), a warm-up is not counted, medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.harness import Row, format_rows, get_spark, interleave, noop_write, summarize

TARGET = 1.2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--users", type=int, default=5_000)
    p.add_argument("--items", type=int, default=2_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.rows, args.users, args.items, args.epochs, args.rounds = 6000, 300, 100, 1, 1
    return args


def _data(spark: Any, args: argparse.Namespace, share: float) -> Any:
    from spark_dl.datasets.interactions import interactions

    df = interactions(spark, args.rows, users=args.users, items=args.items,
                      power_users=0.01 if share else 0.0, power_share=share, seed=1,
                      partitions=4).select("user", "item").cache()
    assert df.count() == args.rows
    return df


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both benchmarks, print a table, return the results."""
    from spark_dl import TorchRecommender

    args = parse_args(argv)
    spark, created = get_spark()
    try:
        even, skewed = _data(spark, args, 0.0), _data(spark, args, 0.5)
        rec = TorchRecommender(implicitPrefs=True, ratingCol="", numProcesses=2,
                               maxEpochs=args.epochs, batchSize=1024,
                               modelParams={"embedding_dim": 32, "tower_layers": [64]})
        spread: dict[str, list[int]] = {}

        def fit(name: str, df: Any) -> Any:
            model = rec.fit(df)
            spread[name] = [r["train"] for r in model.rowsPerRank]
            return model

        train, _ = interleave({"even": lambda: fit("even", even),
                               "skewed": lambda: fit("skewed", skewed)},
                              args.rounds, 1, "training", {"ratio": ("skewed", "even")})
        model = fit("even", even)
        plans = {s: model.copy({model.recommendStrategy: s}) for s in ("broadcast", "blocked")}
        topk, _ = interleave({s: (lambda m=m: noop_write(m.recommendForAllUsers(10)))
                              for s, m in plans.items()},
                             args.rounds, 1, "top-k", {"ratio": ("blocked", "broadcast")})
        a, b = (sorted(r["recommendations"][0]["item"] for r in m.recommendForAllUsers(1)
                       .orderBy("user").limit(50).collect()) for m in plans.values())
        assert a == b, "the two plans disagree"
        result = {"train": summarize(train), "topk": summarize(topk), "rows_per_rank": spread,
                  "config": vars(args), "smoke": args.smoke}
        result["pass"] = None if args.smoke else (
            result["train"]["ratio"]["median"] <= TARGET
            and all(max(v) - min(v) <= 1 for v in spread.values()))
        print(format_rows(rows(result)))
        return result
    finally:
        if created:
            spark.stop()


def rows(r: dict[str, Any]) -> list[Row]:
    """The result rows of :func:`main` (see :class:`bench.harness.Row`)."""
    skew = r["rows_per_rank"]
    return [
        Row("recommendation", "fit time, 1% users hold 50% / even",
            f"{r['train']['ratio']['median']:.2f}", f"<= {TARGET}", r["pass"],
            f"rows per rank: skewed {skew.get('skewed')}, even {skew.get('even')}"),
        Row("recommendation", "recommendForAllUsers(10): blocked / broadcast",
            f"{r['topk']['ratio']['median']:.2f}", "-", None,
            f"broadcast {r['topk']['broadcast']['median']:.1f}s, "
            f"blocked {r['topk']['blocked']['median']:.1f}s"),
    ]


if __name__ == "__main__":
    sys.exit(0 if main()["pass"] is not False else 1)
