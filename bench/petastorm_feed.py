"""The petastorm data feed against the Arrow feed: fit time, time to first step, samples/s.

petastorm imports only with pyspark 3.5 and pyarrow 14, so this runs in ``.venv-spark35``
(``make compat-venvs`` builds it). Three arms fit the same ``TorchClassifier`` (MLP,
2 driver-local ranks) on the same cached DataFrame:

- arrow: ``dataFeed="arrow"`` (the default: the prepared rows collected as Arrow, one IPC
  file per rank);
- petastorm_cold: ``dataFeed="petastorm"`` with the cache deleted first, so the fit pays
  ``make_spark_converter``'s Parquet write;
- petastorm_warm: ``dataFeed="petastorm"`` with the cache of the previous fit on the same
  rows (what a ``CrossValidator``'s candidates on one fold, or a refit, get).

Interleaved, the order reversed every other round, one warm-up round not counted; the
figures are medians of per-round ratios (arm / arrow, below 1: faster than Arrow).
Time to first step is from ``fit()`` entering to rank 0's first optimizer step; samples/s
is the training loop's own figure for the last epoch: both feeds hand the loop the same
in-memory arrays, so a difference there is noise or memory layout, and is reported as
measured.

    .venv-spark35/bin/python -m bench.petastorm_feed [--rows 200000] [--features 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from bench.harness import Row, get_spark, interleave, summarize

ARMS = ("arrow", "petastorm_cold", "petastorm_warm")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny and cold: checks it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.features, args.epochs, args.rounds, args.warmup = 2000, 4, 1, 1, 0
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from spark_dl import compat

    compat.import_petastorm("bench.petastorm_feed")  # a clear error outside .venv-spark35
    from pyspark.sql import functions as F

    from spark_dl import TorchClassifier
    from spark_dl.training import petastorm_feed

    spark, created = get_spark("spark_dl-bench-petastorm")
    figures: dict[str, list[dict[str, float]]] = {a: [] for a in ARMS}
    with tempfile.TemporaryDirectory(prefix="spark_dl-bench-petastorm-") as tmp:
        spark.conf.set("spark.dl.petastorm.cacheDir", tmp)
        cols = [F.rand(seed=i).cast("float") for i in range(args.features)]
        df = (spark.range(args.rows, numPartitions=4)
              .select(F.array(*cols).alias("features"))
              .withColumn("label", (F.col("features")[0] + F.col("features")[1] > 1)
                          .cast("double"))
              .cache())
        df.count()

        def fit(feed: str, cold: bool) -> None:
            if cold:
                petastorm_feed.clear_cache()
            model = TorchClassifier(dataFeed=feed, numProcesses=2, maxEpochs=args.epochs,
                                    batchSize=256, modelParams={"hidden_layers": [64]},
                                    seed=0).fit(df)
            t = model._timings
            figures[arm_name(feed, cold)].append({
                "first_step_s": t["first_step"] - t["fit_started"],
                "samples_per_sec": model.history[-1]["samples_per_sec"]})

        runs = {"arrow": lambda: fit("arrow", False),
                "petastorm_cold": lambda: fit("petastorm", True),
                "petastorm_warm": lambda: fit("petastorm", False)}
        # petastorm_warm must follow a petastorm fit: the cold arm leaves the cache it wrote.
        # ABBA order would put warm first in odd rounds, after the previous round's cold arm,
        # whose cache is still there: warm in every round.
        per_round, _ = interleave(
            runs, args.rounds, args.warmup, "petastorm feed",
            {"cold/arrow": ("petastorm_cold", "arrow"), "warm/arrow": ("petastorm_warm", "arrow")})
        petastorm_feed.clear_cache()
        spark.conf.unset("spark.dl.petastorm.cacheDir")
    df.unpersist()
    if created:
        spark.stop()
    counted = {a: v[args.warmup:] for a, v in figures.items()}
    extra = [{f"{a}_{k}": counted[a][i][k] for a in ARMS for k in counted[a][i]}
             for i in range(args.rounds)]
    for rec in extra:
        rec["first_step warm/arrow"] = rec["petastorm_warm_first_step_s"] / rec["arrow_first_step_s"]
        rec["first_step cold/arrow"] = rec["petastorm_cold_first_step_s"] / rec["arrow_first_step_s"]
    return {"args": vars(args), "fit": summarize(per_round), "detail": summarize(extra)}


def arm_name(feed: str, cold: bool) -> str:
    return "arrow" if feed == "arrow" else ("petastorm_cold" if cold else "petastorm_warm")


def rows(result: dict[str, Any]) -> list[Row]:
    """Fit time and time to first step, petastorm / arrow (informational: no target)."""
    fit, d, a = result["fit"], result["detail"], result["args"]
    note = f"{a['rows']} rows x {a['features']}, 2 ranks, {a['rounds']} rounds"
    return [
        Row("petastorm_feed", "fit time, petastorm (cold cache) / arrow",
            f"{fit['cold/arrow']['median']:.2f}x", "informational", None, note),
        Row("petastorm_feed", "fit time, petastorm (warm cache) / arrow",
            f"{fit['warm/arrow']['median']:.2f}x", "informational", None, note),
        Row("petastorm_feed", "time to first step, petastorm (warm) / arrow",
            f"{d['first_step warm/arrow']['median']:.2f}x", "informational", None,
            f"arrow {d['arrow_first_step_s']['median']:.1f}s, warm "
            f"{d['petastorm_warm_first_step_s']['median']:.1f}s, cold "
            f"{d['petastorm_cold_first_step_s']['median']:.1f}s"),
        Row("petastorm_feed", "samples/s (last epoch), arrow vs petastorm warm",
            f"{d['arrow_samples_per_sec']['median']:.0f} vs "
            f"{d['petastorm_warm_samples_per_sec']['median']:.0f}", "informational", None,
            "the loop's own rate on in-memory rows"),
    ]


if __name__ == "__main__":
    from bench.harness import format_rows

    print(format_rows(rows(main())))
