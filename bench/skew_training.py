"""Skew benchmark 2: distributed training on even (A) and 90/10 (B) partitions; every fit
must finish (see :mod:`bench.skew`)."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.harness import CpuMeter, summarize, wait_for_quiet
from bench.skew_common import TRAIN_FEATURES, Config, cached, rows_per_partition, skewed_layout

def fit_with_timeout(clf: Any, df: Any, timeout: float) -> tuple[float, Any, str | None]:
    """``(seconds, model or None, error)``; a fit past ``timeout`` cancels all Spark jobs."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["model"] = clf.fit(df)
        except BaseException as exc:  # noqa: BLE001 - reported, not raised
            box["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    start = time.perf_counter()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    secs = time.perf_counter() - start
    if thread.is_alive():
        df.sparkSession.sparkContext.cancelAllJobs()
        thread.join(60)
        return secs, None, f"hang: no result after {timeout:.0f} s (jobs cancelled)"
    return secs, box.get("model"), box.get("error")


def bench_training(spark: Any, cfg: Config) -> dict[str, Any]:
    """Distributed fits on two even partitions (A) and on a 90/10 split (B)."""
    from pyspark.sql import functions as F

    from spark_dl import TorchClassifier

    rows, nf = cfg.train_rows, TRAIN_FEATURES
    print(f"[training] {rows:,} rows x {nf} features, numProcesses=2, localMode=False, "
          f"maxEpochs={cfg.train_epochs}: preparing", flush=True)
    feats = F.array(*[F.randn(100 + i) for i in range(nf)]).cast("array<float>")
    base = cached(spark.range(0, rows, 1, 2).select("id", feats.alias("features"))
                  .withColumn("label", (F.col("features")[0] - F.col("features")[3] > 0)
                              .cast("double")), rows)
    cols = ["features", "label"]
    even = cached(base.select(*cols), rows)
    skewed = cached(skewed_layout(base, rows, 0.9, 1).select(*cols), rows)
    base.unpersist()
    layout = {"A": rows_per_partition(even), "B": rows_per_partition(skewed)}
    print(f"  rows per partition: A {layout['A']}, B {layout['B']}", flush=True)
    clf = TorchClassifier(featuresCol="features", numProcesses=2, localMode=False,
                          maxEpochs=cfg.train_epochs, batchSize=256,
                          modelParams={"hidden_layers": [64]})
    fits: list[dict[str, Any]] = []
    per_round, loads = [], []
    try:
        for i in range(cfg.warmup + cfg.train_rounds):
            waited = wait_for_quiet(cfg.quiet_wait) if cfg.quiet_wait else 0.0
            secs, load = {}, {}
            layouts = [("A", even), ("B", skewed)]
            for name, df in (layouts if i % 2 == 0 else layouts[::-1]):  # ABBA order
                meter = CpuMeter()
                s, model, err = fit_with_timeout(clf, df, cfg.train_timeout)
                load[name] = meter.foreign_cores()
                hist = model.history if model is not None else []
                fits.append({"round": i, "layout": name, "seconds": s, "error": err,
                             "epochs": len(hist),
                             "train_loss": hist[-1].get("train_loss") if hist else None})
                secs[name] = s
                if err or model is None:
                    print(f"  training {name} FAILED after {s:.1f}s: {err}", flush=True)
            tag = "warm-up" if i < cfg.warmup else f"round {i - cfg.warmup + 1}"
            print(f"  training {tag} ({'AB' if i % 2 == 0 else 'BA'}): A {secs['A']:.2f}s, "
                  f"B {secs['B']:.2f}s; "
                  f"B/A {secs['B'] / secs['A']:.3f}; foreign load {max(load.values()):.2f} "
                  f"cores (waited {waited:.0f}s)", flush=True)
            if i >= cfg.warmup:
                per_round.append({"A": secs["A"], "B": secs["B"], "B/A": secs["B"] / secs["A"]})
                loads.append(load)
    finally:
        even.unpersist()
        skewed.unpersist()
    finished = all(f["error"] is None and f["epochs"] == cfg.train_epochs for f in fits)
    if cfg.smoke:
        assert finished, f"a fit did not finish: {fits}"
    return {"rows": rows, "rows_per_partition": layout, "fits": fits, "all_finished": finished,
            "timeout_s": cfg.train_timeout, "rounds": per_round, "foreign_cores": loads,
            "summary": summarize(per_round)}
