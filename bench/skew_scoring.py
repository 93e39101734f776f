"""Skew benchmark 1: scoring the same rows laid out evenly (A) and with one partition
holding 90% of them (B); see :mod:`bench.skew`."""

from __future__ import annotations

import time
from typing import Any, Callable

from bench.harness import interleave, noop_write, summarize
from bench.skew_common import SCORING_FEATURES, Config, cached, rows_per_partition, skewed_layout

def bench_scoring(spark: Any, cfg: Config) -> dict[str, Any]:
    """Score the same cached rows laid out evenly (A) and with a 90% partition (B)."""
    from pyspark.sql import functions as F

    from spark_dl import TorchClassifier
    from spark_dl.skew import rebalance

    rows, nf = cfg.score_rows, SCORING_FEATURES
    print(f"[scoring] {rows:,} rows x {nf} features, hidden_layers={list(cfg.score_hidden)}: "
          "preparing", flush=True)
    feats = F.array(*[F.randn(i) for i in range(nf)]).cast("array<float>")
    base = cached(spark.range(0, rows, 1, 8).select("id", feats.alias("features"))
                  .withColumn("label", (F.col("features")[0] + F.col("features")[1] > 0)
                              .cast("double")), rows)
    cols = ["features", "label"]
    even = cached(base.select(*cols), rows)
    skewed = cached(skewed_layout(base, rows, 0.9, 7).select(*cols), rows)
    base.unpersist()
    layout = {"A": rows_per_partition(even), "B": rows_per_partition(skewed)}
    print(f"  rows per partition: A {layout['A']}, B {layout['B']}", flush=True)
    try:
        clf = TorchClassifier(featuresCol="features",
                              modelParams={"hidden_layers": list(cfg.score_hidden)},
                              maxEpochs=1, batchSize=1024)
        start = time.perf_counter()
        model = clf.fit(even.limit(cfg.fit_rows))
        fit_s = time.perf_counter() - start
        never = model.copy({model.rebalance: "never"})
        assert model.getRebalance() == "auto" and never.getRebalance() == "never"
        got: dict[str, tuple[int, float]] = {}

        def score(name: str, m: Any, df: Any) -> Callable[[], None]:
            """A noop write; in smoke mode a (count, sum) of the predictions instead, kept
            for the check (the same scoring work, plus a tiny aggregation)."""
            def run() -> None:
                out = m.transform(df)
                if cfg.smoke:
                    r = out.agg(F.count("prediction"), F.sum("prediction")).first()
                    got[name] = (int(r[0]), float(r[1] or 0.0))
                else:
                    noop_write(out)
            return run

        runs = {
            "A auto": score("A auto", model, even),
            "B auto": score("B auto", model, skewed),
            "A never": score("A never", never, even),
            "B never": score("B never", never, skewed),
        }
        if not cfg.smoke:  # diagnostic: what rebalance="auto" adds on B, without the model
            runs["B rebalance only"] = lambda: noop_write(rebalance(skewed))
        ratios = {"B/A auto": ("B auto", "A auto"), "B/A never": ("B never", "A never")}
        per_round, loads = interleave(runs, cfg.score_rounds, cfg.warmup, "scoring", ratios,
                                      cfg.quiet_wait)
        result: dict[str, Any] = {"rows": rows, "hidden_layers": list(cfg.score_hidden),
                                  "rows_per_partition": layout, "fit_s": fit_s,
                                  "rounds": per_round, "foreign_cores": loads,
                                  "summary": summarize(per_round)}
        if cfg.smoke:
            result["check"] = check_scoring(got, rows)
        return result
    finally:
        even.unpersist()
        skewed.unpersist()


def check_scoring(got: dict[str, tuple[int, float]], rows: int) -> dict[str, Any]:
    """Every row scored in all four jobs, and the same predictions whatever the layout."""
    assert len(got) == 4, got
    for name, (n, _) in got.items():
        assert n == rows, f"scoring {name}: {n} of {rows} rows"
    sums = [s for _, s in got.values()]
    assert max(sums) - min(sums) <= max(1.0, 1e-3 * rows), got  # argmax near-ties may flip
    return got
