"""Skew benchmarks: scoring, distributed training and sequence windowing on lopsided data.

Each benchmark runs the same work on (A) an even layout and (B) a skewed one, interleaved
in rounds with the order reversed every other round (A B, B A, A B, ...: no order bias);
a warm-up round is not counted, and the report gives medians of the per-round ratios B/A
of wall-clock seconds (1.0: skew costs nothing). Before each round the script waits (up
to ``--quiet-wait`` s) for other processes to leave the CPUs alone, and it records the CPU
they used during every timed job ("other load", in cores): on a shared 2-core machine a
busy neighbour hides the cost of skew, since one core is then all there is to use.

1. **Scoring.** The same rows (``features`` array<float>[64], ``label``), cached and
   counted, as (A) 8 even partitions and (B) 8 partitions of which one holds 90% of the
   rows (a ``coalesce(1)`` slice unioned with a ``repartition(7)`` of the rest). A fitted
   ``TorchClassificationModel`` scores them with ``model.transform(df)`` and a ``noop``
   write: with the default ``rebalance="auto"`` and with ``rebalance="never"``, each on A
   and B; plus ``spark_dl.skew.rebalance(B)`` alone (what auto adds, without the model).
   The network has hidden layers 1024, 1024 (not 256, 256: there the forward pass was
   about a quarter of the job and Spark's data movement the rest). Target: B/A <= 1.15
   with ``auto``.
2. **Training.** ``TorchClassifier(numProcesses=2, localMode=False, maxEpochs=2,
   batchSize=256, hidden_layers=[64])`` fitted on the same rows (16 features, label 0/1)
   as (A) two even partitions and (B) a 90/10 split. Each fit runs in a thread with a
   timeout; a fit that does not finish cancels the Spark jobs and counts as a hang (FAIL).
   TorchDistributor fits are slow, so this one runs 3 counted rounds after 1 warm-up.
   Target: B/A <= 1.15, and every fit finishes. What this measures, and what not: both
   arms go through spark_dl's own dealing of rows into ``numProcesses`` partitions, so B/A
   says that the input's layout costs a fit nothing beyond that shuffle; it is not a
   comparison with another tool. (A TorchDistributor user who skips such a step gives one
   rank 90% of the rows; one who writes ``df.repartition(numProcesses)`` gets an even
   split from Spark's round-robin too.)
3. **Windowing.** ``spark_dl.feature.SequenceWindower`` (T=16, step 1, horizon 1) on
   per-key series (key, t, four values, label): (A) 40 keys with equal rows, (B) the same
   total rows with one key holding 75%. It first runs once per layout with Spark's
   defaults (a failure is reported, and the rest then samples every row for range
   bounds). Target: B/A <= 1.2. On B the output is compared between the windower (hot key
   split into chunks of ``maxRowsPerTask`` rows), the windower with ``maxRowsPerTask`` >=
   the largest key (unsplit) and a plain ``groupBy(key).applyInArrow(make_windows)`` that
   holds each key in one Arrow table and builds its windows with numpy into one Arrow
   list array (the best plain version a careful user writes) (count, label and feature sums, and a sum of
   per-window xxhash64 values; exact row equality in ``--smoke``). Python-worker peak
   memory: each approach runs on B in its own short-lived SparkSession subprocess that
   polls ``/proc/<pid>/status`` (``VmHWM``, the kernel's peak RSS) of every
   ``pyspark.daemon`` process below it every 50 ms; the figure is the largest peak of any
   single Python worker. Target: plain peak / windower peak >= 4.

Run ``python bench/skew.py`` (``--help`` for sizes; ``--only`` picks benchmarks).
``--smoke`` runs tiny sizes, one round each, and asserts correctness (every row scored
with the same predictions, every fit finished, identical windows between split, unsplit
and plain, the memory sampler finds the workers). ``main(argv)`` returns the results:
``targets`` holds the rows with a target or check, ``measured`` every row of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, NamedTuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BENCHES = ("scoring", "training", "windowing")
SCORING_FEATURES = 64
TRAIN_FEATURES = 16
NUM_VALUES = 4
MEM_TAG = "SKEW_MEM_RESULT "
#: (benchmark, ratio, comparison, target) printed beside the measured medians.
TARGETS = {
    "scoring B/A (rebalance=auto)": ("<=", 1.15),
    "training B/A": ("<=", 1.15),
    "windowing B/A": ("<=", 1.2),
    "windowing: plain peak / windower peak": (">=", 4.0),
}


class Config(NamedTuple):
    """Command-line settings."""

    only: tuple[str, ...]
    score_rows: int
    score_hidden: tuple[int, ...]
    score_rounds: int
    fit_rows: int
    train_rows: int
    train_rounds: int
    train_epochs: int
    train_timeout: float
    window_rows: int
    window_keys: int
    hot_share: float
    window_length: int
    window_step: int
    horizon: int
    max_rows_per_task: int
    window_rounds: int
    warmup: int
    quiet_wait: float
    smoke: bool


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    """Parse ``argv`` (``None``: ``sys.argv[1:]``); ``--smoke`` overrides the sizes."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    p.add_argument("--score-rows", type=int, default=800_000)
    p.add_argument("--score-hidden", default="1024,1024", help="hidden layers of the scorer")
    p.add_argument("--score-rounds", type=int, default=5)
    p.add_argument("--train-rows", type=int, default=200_000)
    p.add_argument("--train-rounds", type=int, default=3)
    p.add_argument("--train-timeout", type=float, default=300.0, help="seconds per fit")
    p.add_argument("--window-rows", type=int, default=2_000_000)
    p.add_argument("--window-keys", type=int, default=40)
    p.add_argument("--hot-share", type=float, default=0.75)
    p.add_argument("--window-length", type=int, default=16)
    p.add_argument("--window-rounds", type=int, default=5)
    p.add_argument("--quiet-wait", type=float, default=60.0,
                   help="before each round, wait up to this many s for other load to stop")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one round, checks")
    # internal: one memory-measurement subprocess
    p.add_argument("--mem-child", choices=("windower", "plain"), help=argparse.SUPPRESS)
    p.add_argument("--max-rows-per-task", type=int, default=100_000, help=argparse.SUPPRESS)
    p.add_argument("--range-sample", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    only = tuple(b for b in a.only.split(",") if b)
    bad = set(only) - set(BENCHES)
    if bad:
        p.error(f"unknown benchmark(s) {sorted(bad)}; choose from {list(BENCHES)}")
    hidden = tuple(int(h) for h in a.score_hidden.split(",") if h)
    if a.smoke:
        cfg = Config(only, score_rows=4000, score_hidden=(16,), score_rounds=1, fit_rows=1000,
                     train_rows=2000, train_rounds=1, train_epochs=1, train_timeout=240.0,
                     window_rows=6000, window_keys=6, hot_share=0.75, window_length=5,
                     window_step=2, horizon=1, max_rows_per_task=700, window_rounds=1,
                     warmup=0, quiet_wait=0.0, smoke=True)
    else:
        cfg = Config(only, a.score_rows, hidden, a.score_rounds, fit_rows=5000,
                     train_rows=a.train_rows, train_rounds=a.train_rounds, train_epochs=2,
                     train_timeout=a.train_timeout, window_rows=a.window_rows,
                     window_keys=a.window_keys, hot_share=a.hot_share,
                     window_length=a.window_length, window_step=1, horizon=1,
                     max_rows_per_task=a.max_rows_per_task, window_rounds=a.window_rounds,
                     warmup=1, quiet_wait=a.quiet_wait, smoke=False)
    return cfg, a


# ---------------------------------------------------------------------- Spark and helpers
def get_spark(app: str = "spark_dl-bench-skew") -> tuple[Any, bool]:
    """The active SparkSession, or a new loopback ``local[2]`` one: ``(spark, created)``."""
    from scoring import get_spark as scoring_spark

    return scoring_spark(app)


def noop_write(df: Any) -> None:
    """Evaluate every column of ``df`` without keeping the result."""
    df.write.format("noop").mode("overwrite").save()


def timed(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------- foreign CPU load
def _machine_jiffies() -> tuple[int, int]:
    """``(total, busy)`` jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:9]]
    return sum(vals), sum(vals) - vals[3] - vals[4]  # idle and iowait are not busy


def _tree_jiffies(root: int) -> int:
    """CPU jiffies used by ``root`` and its live descendants, reaped children included."""
    kids, total, stack = _proc_children(), 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError):
            pass
        stack.extend(kids.get(pid, ()))
    return total


class CpuMeter:
    """CPU the rest of the machine used while we ran, in cores (0 = we had it alone)."""

    def __init__(self) -> None:
        self.start = (_machine_jiffies(), _tree_jiffies(os.getpid()))

    def foreign_cores(self) -> float:
        (total0, busy0), ours0 = self.start
        total1, busy1 = _machine_jiffies()
        ours = _tree_jiffies(os.getpid()) - ours0
        span = max(total1 - total0, 1)
        return max(0.0, (busy1 - busy0 - ours) / span * (os.cpu_count() or 1))


def measure(fn: Callable[[], Any]) -> tuple[float, float]:
    """``(wall seconds, foreign CPU cores)`` of one call."""
    meter = CpuMeter()
    secs = timed(fn)
    return secs, meter.foreign_cores()


def wait_for_quiet(max_wait: float, limit: float = 0.3) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``limit`` cores over 1 s;
    returns the seconds waited. Bounds, not removes, the noise of a shared machine."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        meter = CpuMeter()
        time.sleep(1.0)
        if meter.foreign_cores() < limit:
            break
    return time.perf_counter() - start


def cached(df: Any, rows: int | None = None) -> Any:
    """``df`` cached and counted (asserting ``rows`` when given)."""
    df = df.cache()
    n = df.count()
    assert rows is None or n == rows, f"expected {rows} rows, got {n}"
    return df


def rows_per_partition(df: Any) -> list[int]:
    """Rows in each partition of ``df`` (one job)."""
    from spark_dl.skew import partition_stats

    return partition_stats(df).counts


def skewed_layout(base: Any, rows: int, share: float, rest_parts: int) -> Any:
    """``base`` (with an ``id`` column 0..rows-1) as one partition holding ``share`` of the
    rows followed by ``rest_parts`` partitions holding the rest."""
    from pyspark.sql import functions as F

    cut = int(rows * share)
    if rest_parts == 1:
        # A union of two single-partition inputs is itself single-partition in Spark 4
        # (spark.sql.unionOutputPartitioning), so split by range on the flag instead.
        return base.repartitionByRange(2, (F.col("id") >= cut).alias("_rest"))
    hot = base.where(F.col("id") < cut).coalesce(1)
    return hot.union(base.where(F.col("id") >= cut).repartition(rest_parts))


def interleave(runs: dict[str, Callable[[], Any]], rounds: int, warmup: int, label: str,
               ratios: dict[str, tuple[str, str]], quiet_wait: float = 0.0
               ) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Run ``runs`` in order, ``warmup + rounds`` times. Per counted round: seconds of each
    job and the ratios; and, separately, the foreign CPU load (cores) during each job."""
    out, loads = [], []
    for i in range(warmup + rounds):
        waited = wait_for_quiet(quiet_wait) if quiet_wait else 0.0
        secs, load = {}, {}
        order = list(runs) if i % 2 == 0 else list(reversed(runs))  # ABBA: no order bias
        for name in order:
            secs[name], load[name] = measure(runs[name])
        secs = {name: secs[name] for name in runs}
        rec = {**secs, **{r: secs[b] / secs[a] for r, (b, a) in ratios.items()}}
        tag = "warm-up" if i < warmup else f"round {i - warmup + 1}"
        tag += " (reversed order)" if i % 2 else ""
        print(f"  {label} {tag}: " + ", ".join(f"{k} {v:.2f}s" for k, v in secs.items())
              + "; " + ", ".join(f"{r} {rec[r]:.3f}" for r in ratios)
              + f"; foreign load {max(load.values()):.2f} cores (waited {waited:.0f}s)",
              flush=True)
        if i >= warmup:
            out.append(rec)
            loads.append(load)
    return out, loads


def summarize(per_round: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median, min and max of every figure across rounds."""
    keys = per_round[0].keys()
    return {k: {"median": statistics.median(r[k] for r in per_round),
                "min": min(r[k] for r in per_round), "max": max(r[k] for r in per_round)}
            for k in keys}


# ---------------------------------------------------------------------- 1. scoring
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


# ---------------------------------------------------------------------- 2. training
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


# ---------------------------------------------------------------------- 3. windowing
def series_data(spark: Any, rows: int, keys: int, hot_share: float) -> Any:
    """Per-key series ``key, t, v0..v3, label``: ``keys`` keys with equal rows, or (hot_share
    > 0) one key ``k00`` with ``hot_share`` of the rows and the rest spread over the others.
    Deterministic (fixed partitions and seeds); not cached."""
    from pyspark.sql import functions as F

    idc = F.col("id")
    hot = int(rows * hot_share)
    if hot:
        rest = keys - 1
        k = F.when(idc < hot, F.lit(0)).otherwise(F.lit(1) + (idc - hot) % rest)
        t = F.when(idc < hot, idc).otherwise(F.floor((idc - hot) / rest))
    else:
        k, t = idc % keys, F.floor(idc / keys)
    df = spark.range(0, rows, 1, 8).select(
        F.format_string("k%02d", k.cast("int")).alias("key"), t.cast("long").alias("t"))
    vals = [(F.sin(F.col("t") * (0.01 * (i + 1))) + 0.1 * F.randn(200 + i)).alias(f"v{i}")
            for i in range(NUM_VALUES)]
    return df.select("key", "t", *vals, F.rand(300).alias("label"))


def windower(cfg: Config, max_rows: int | None = None) -> Any:
    """The SequenceWindower under test."""
    from spark_dl.feature import SequenceWindower

    return SequenceWindower(keyCol="key", timeCol="t",
                            valueCols=[f"v{i}" for i in range(NUM_VALUES)],
                            windowLength=cfg.window_length, step=cfg.window_step,
                            horizon=cfg.horizon, labelCol="label",
                            maxRowsPerTask=max_rows or cfg.max_rows_per_task)


WINDOW_SCHEMA = "key string, windowStart long, windowEnd long, features array<float>, label double"


def plain_function(length: int, step: int, horizon: int, nv: int,
                   with_rss: bool = False) -> Callable[[Any], Any]:
    """The plain ``make_windows`` a careful user writes: one whole key as one Arrow table,
    numpy's ``sliding_window_view`` for the windows, and the features built as one Arrow
    list array over a flat float32 buffer (no Python object per window). The same windows
    as the windower (row-major float32 steps, label ``horizon`` rows after the last step).
    ``with_rss`` adds an ``rss_kib`` column: this worker's ``ru_maxrss`` after building them."""

    def make_windows(table):  # type: ignore[no-untyped-def]  # hints would be parsed by pyspark
        import resource

        import pyarrow as pa
        import pyarrow.compute as pc
        from numpy.lib.stride_tricks import sliding_window_view

        table = table.take(pc.sort_indices(table, [("t", "ascending")]))  # stable
        values = np.column_stack([table.column(f"v{i}").to_numpy() for i in range(nv)])
        starts = np.arange(0, table.num_rows - length - horizon + 1, step, dtype=np.int64)
        n, width = len(starts), length * nv
        if n:
            flat = sliding_window_view(values, (length, nv))[starts, 0].reshape(n, width)
            flat = flat.astype(np.float32)
        else:
            flat = np.zeros((0, width), np.float32)
        feats = pa.ListArray.from_arrays(
            pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32)),
            pa.array(flat.reshape(-1)))
        t = table.column("t").to_numpy()
        columns = {
            "key": table.column("key").take(pa.array(np.zeros(n, np.int64))),
            "windowStart": pa.array(t[starts]), "windowEnd": pa.array(t[starts + length - 1]),
            "features": feats,
            "label": pa.array(table.column("label").to_numpy()[starts + length - 1 + horizon]),
        }
        if with_rss:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            columns["rss_kib"] = pa.array(np.full(n, rss, np.int64))
        return pa.table(columns)

    return make_windows


def plain_windows(df: Any, cfg: Config, with_rss: bool = False) -> Any:
    """``groupBy(key).applyInArrow(make_windows)``: each key whole in one Arrow table."""
    fn = plain_function(cfg.window_length, cfg.window_step, cfg.horizon, NUM_VALUES, with_rss)
    schema = WINDOW_SCHEMA + (", rss_kib long" if with_rss else "")
    return df.groupBy("key").applyInArrow(fn, schema)


def checksum(out: Any) -> dict[str, Any]:
    """Count, label sum, feature sum and a sum of per-window xxhash64 values (mod a prime)."""
    from pyspark.sql import functions as F

    h = F.pmod(F.xxhash64("key", "windowStart", "windowEnd", "features", "label"),
               F.lit(1_000_000_007))
    r = out.agg(F.count(F.lit(1)).alias("n"), F.sum(h).alias("h"), F.sum("label").alias("y"),
                F.sum(F.aggregate("features", F.lit(0.0), lambda a, x: a + x)).alias("f")
                ).first()
    return {"windows": int(r["n"]), "hash": int(r["h"] or 0), "label_sum": float(r["y"] or 0),
            "feature_sum": float(r["f"] or 0)}


def same_checksum(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Exact on count and hash; float sums (summed in any order) to a relative 1e-9."""
    close = all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(a[k]))
                for k in ("label_sum", "feature_sum"))
    return a["windows"] == b["windows"] and a["hash"] == b["hash"] and close


def expected_windows(df: Any, cfg: Config) -> int:
    """Windows the key sizes call for: floor((n - T - h) / step) + 1 per key with n >= T + h."""
    need = cfg.window_length + cfg.horizon
    return sum((n - need) // cfg.window_step + 1
               for n in (int(r["count"]) for r in df.groupBy("key").count().collect())
               if n >= need)


#: Spark SQL's samples per output partition when it computes range-partition bounds.
RANGE_SAMPLE_KEY = "spark.sql.execution.rangeExchange.sampleSizePerPartition"
#: With this hint the sample reaches Spark's cap of 1e6 rows, i.e. 3e6 / (input partitions)
#: rows per input partition: every row of an input of up to 3M rows, so the bounds, and
#: with them the windower's row numbering, are the same in every job.
RANGE_SAMPLE_ALL = 1_000_000


def try_defaults(w: Any, layouts: dict[str, Any]) -> str | None:
    """Run the windower once per layout with Spark's defaults; the first error, if any."""
    for name, df in layouts.items():
        try:
            noop_write(w.transform(df))
        except Exception as exc:  # noqa: BLE001 - reported
            text = str(exc)
            lines = [ln for ln in text.splitlines() if "SequenceWindower" in ln] or [text]
            return f"layout {name}: {lines[-1].strip()[:300]}"
    return None


def bench_windowing(spark: Any, cfg: Config) -> dict[str, Any]:
    """Windower B/A timing, split/unsplit/plain output agreement on B, and worker memory.

    The windower first runs once per layout with Spark's defaults. If that fails, the rest
    runs with every row sampled for range bounds (``RANGE_SAMPLE_KEY``), and says so."""
    rows = cfg.window_rows
    print(f"[windowing] {rows:,} rows, A: {cfg.window_keys} equal keys, B: one key with "
          f"{cfg.hot_share:.0%}; T={cfg.window_length}, step={cfg.window_step}, "
          f"horizon={cfg.horizon}, maxRowsPerTask={cfg.max_rows_per_task}: preparing",
          flush=True)
    even = cached(series_data(spark, rows, cfg.window_keys, 0.0), rows)
    skewed = cached(series_data(spark, rows, cfg.window_keys, cfg.hot_share), rows)
    w = windower(cfg)
    result: dict[str, Any] = {"rows": rows, "keys": cfg.window_keys, "hot_share": cfg.hot_share,
                              "window_length": cfg.window_length, "step": cfg.window_step,
                              "horizon": cfg.horizon, "max_rows_per_task": cfg.max_rows_per_task}
    previous = spark.conf.get(RANGE_SAMPLE_KEY, None)
    if previous is not None:
        spark.conf.unset(RANGE_SAMPLE_KEY)
    try:
        start = time.perf_counter()
        # Smoke: its one round runs with the defaults, and a failure there fails the smoke.
        error = try_defaults(w, {"A": even, "B": skewed}) if not cfg.smoke else None
        result["defaults_error"] = error
        print(f"  windower with Spark defaults: {'FAILED: ' + error if error else 'ok'} "
              f"({time.perf_counter() - start:.1f}s)", flush=True)
        result["range_sample"] = RANGE_SAMPLE_ALL if error else None
        if error:
            if rows > 3_000_000:
                print("  WARNING: over 3M rows even the workaround samples only part of "
                      "the rows; the windower may fail again", flush=True)
            spark.conf.set(RANGE_SAMPLE_KEY, str(RANGE_SAMPLE_ALL))
            print(f"  continuing with {RANGE_SAMPLE_KEY}={RANGE_SAMPLE_ALL} (every row sampled "
                  "for the range bounds)", flush=True)
        runs = {"A": lambda: noop_write(w.transform(even)),
                "B": lambda: noop_write(w.transform(skewed))}
        per_round, loads = interleave(runs, cfg.window_rounds, cfg.warmup, "windowing",
                                      {"B/A": ("B", "A")}, cfg.quiet_wait)
        result.update(rounds=per_round, foreign_cores=loads, summary=summarize(per_round))
        if cfg.smoke:
            # In-session sampler check only: fresh subprocesses cost ~20-50 s each.
            sampler = WorkerMemory(os.getpid())
            sampler.start()
            result["agreement"] = check_windows(spark, cfg, w, skewed, rows)
            sampler.stop()
            assert sampler.workers(), "the /proc sampler found no Python worker"
            result["memory"] = {"in_session_worker_peaks_kib": sorted(sampler.workers().values())}
        else:
            result["agreement"] = check_windows(spark, cfg, w, skewed, rows)
    finally:
        even.unpersist()
        skewed.unpersist()
        if previous is None:
            spark.conf.unset(RANGE_SAMPLE_KEY)
        else:
            spark.conf.set(RANGE_SAMPLE_KEY, previous)
    if not cfg.smoke:
        result["memory"] = measure_memory(cfg, result["range_sample"])
    return result


def check_windows(spark: Any, cfg: Config, w: Any, skewed: Any, rows: int) -> dict[str, Any]:
    """Split, unsplit and plain outputs on B agree (exactly, row by row, in smoke mode)."""
    expected = expected_windows(skewed, cfg)
    unsplit = windower(cfg, max_rows=rows)
    outs = {"split": w.transform(skewed), "unsplit": unsplit.transform(skewed),
            "plain": plain_windows(skewed, cfg)}
    sums, secs = {}, {}
    for name, out in outs.items():
        start = time.perf_counter()
        sums[name] = checksum(out)
        secs[name] = time.perf_counter() - start
    identical = all(same_checksum(sums["split"], s) for s in sums.values())
    complete = sums["split"]["windows"] == expected
    print(f"  windowing agreement on B (expected {expected:,} windows): "
          + "; ".join(f"{k} {v['windows']:,} windows, hash {v['hash']}, {secs[k]:.1f}s"
                      for k, v in sums.items()), flush=True)
    check: dict[str, Any] = {"expected_windows": expected, "checksums": sums,
                             "checksum_seconds": secs, "identical": identical,
                             "complete": complete}
    if cfg.smoke:
        def rows_of(df: Any) -> list[tuple[Any, ...]]:
            return sorted((r["key"], r["windowStart"], r["windowEnd"],
                           tuple(r["features"]), r["label"]) for r in df.collect())
        exact = {k: rows_of(v) for k, v in outs.items()}
        assert len(exact["split"]) == expected, (len(exact["split"]), expected)
        assert exact["split"] == exact["unsplit"] == exact["plain"], "windows differ"
        groups = w._chunks(skewed).groupBy("_k", "_chunk").count().agg({"count": "max"}).first()
        assert groups[0] <= cfg.max_rows_per_task + cfg.window_length - 1 + cfg.horizon, groups
        check["exact_rows_equal"] = True
        check["largest_group"] = int(groups[0])
    assert identical and complete, check
    return check


# ---------------------------------------------------------------------- worker memory
def _proc_children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/*/stat."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _status_kib(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


class WorkerMemory(threading.Thread):
    """Polls every ``interval`` s the peak RSS (VmHWM) of each ``pyspark.daemon`` process
    descending from ``root`` (this driver): the daemon and its forked workers."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak: dict[int, int] = {}  # pid -> largest VmHWM seen, KiB
        self.parent: dict[int, int] = {}
        self.pyspark: set[int] = set()  # pids whose command line is pyspark.daemon/worker
        self.polls = 0
        self._stop_event = threading.Event()

    def poll(self) -> None:
        kids = _proc_children()
        stack, seen = [self.root], set()
        while stack:
            pid = stack.pop()
            for c in kids.get(pid, ()):
                if c in seen:
                    continue
                seen.add(c)
                stack.append(c)
                self.parent[c] = pid
                if c not in self.pyspark:  # re-read until it matches: fork comes before exec
                    try:
                        with open(f"/proc/{c}/cmdline", "rb") as f:
                            cmd = f.read()
                    except OSError:
                        continue
                    if b"pyspark.daemon" in cmd or b"pyspark.worker" in cmd:
                        self.pyspark.add(c)
                    else:
                        continue
                hwm = _status_kib(c).get("VmHWM")
                if hwm:
                    self.peak[c] = max(self.peak.get(c, 0), hwm)
        self.polls += 1

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.poll()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.poll()

    def workers(self) -> dict[int, int]:
        """Peak KiB of forked workers (processes whose parent is itself a daemon)."""
        return {p: v for p, v in self.peak.items() if self.parent.get(p) in self.pyspark}

    def daemons(self) -> dict[int, int]:
        return {p: v for p, v in self.peak.items() if self.parent.get(p) not in self.pyspark}


def worker_baseline(spark: Any, sampler: WorkerMemory) -> int:
    """Start the Python workers with pandas and pyarrow imported (an identity
    ``mapInPandas`` over 2 partitions) and return their largest peak, KiB: the baseline of
    any worker. ``sampler`` must be running."""
    spark.range(0, 1000, 1, 2).mapInPandas(lambda it: it, "id long").count()
    time.sleep(0.3)
    sampler.poll()
    return max(sampler.workers().values(), default=0)


def mem_child(cfg: Config, mode: str, range_sample: int | None) -> dict[str, Any]:
    """In a fresh process: the approach ``mode`` on layout B, sampling worker memory."""
    from pyspark.sql import functions as F

    spark, _ = get_spark(f"spark_dl-bench-skew-mem-{mode}")
    if range_sample:
        spark.conf.set(RANGE_SAMPLE_KEY, str(range_sample))
    try:
        df = cached(series_data(spark, cfg.window_rows, cfg.window_keys, cfg.hot_share),
                    cfg.window_rows)
        sampler = WorkerMemory(os.getpid())
        sampler.start()
        baseline = worker_baseline(spark, sampler)
        start = time.perf_counter()
        if mode == "windower":
            out = windower(cfg).transform(df)
            r = out.agg(F.count(F.lit(1)), F.lit(0)).first()
        else:
            out = plain_windows(df, cfg, with_rss=True)
            r = out.agg(F.count(F.lit(1)), F.max("rss_kib")).first()
        secs = time.perf_counter() - start
        sampler.stop()
        workers = sampler.workers()
        return {"mode": mode, "windows": int(r[0]), "seconds": secs,
                "worker_peak_kib": max(workers.values(), default=0),
                "worker_peaks_kib": sorted(workers.values(), reverse=True),
                "baseline_kib": baseline, "daemon_peak_kib": max(sampler.daemons().values(),
                                                                  default=0),
                "ru_maxrss_kib": int(r[1] or 0) if mode == "plain" else None,
                "polls": sampler.polls}
    finally:
        spark.stop()


def run_mem_child(cfg: Config, mode: str, range_sample: int | None,
                  timeout: float = 900.0) -> dict[str, Any]:
    """Run :func:`mem_child` in a subprocess and return what it printed."""
    cmd = [sys.executable, os.path.abspath(__file__), "--mem-child", mode,
           "--window-rows", str(cfg.window_rows), "--window-keys", str(cfg.window_keys),
           "--hot-share", str(cfg.hot_share), "--window-length", str(cfg.window_length),
           "--max-rows-per-task", str(cfg.max_rows_per_task)]
    if cfg.smoke:
        cmd.append("--smoke")
    if range_sample:
        cmd += ["--range-sample", str(range_sample)]
    return run_tagged(cmd, mode, timeout)


def run_tagged(cmd: list[str], what: str, timeout: float = 900.0) -> dict[str, Any]:
    """Run ``cmd``, a child that prints its result as ``MEM_TAG`` + JSON, and return that
    result with the child's wall seconds added as ``process_seconds``."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MEM_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory child {what} failed (rc {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    res = json.loads(lines[-1][len(MEM_TAG):])
    res["process_seconds"] = time.perf_counter() - start
    return res


def measure_memory(cfg: Config, range_sample: int | None = None) -> dict[str, Any]:
    """Peak Python-worker RSS of the windower and of the plain approach, each on B alone."""
    print("  worker memory: one fresh SparkSession subprocess per approach", flush=True)
    from concurrent.futures import ThreadPoolExecutor

    # Both at once: a peak is per process, so running side by side only costs time.
    with ThreadPoolExecutor(2) as pool:
        futures = {mode: pool.submit(run_mem_child, cfg, mode, range_sample)
                   for mode in ("windower", "plain")}
        res = {mode: f.result() for mode, f in futures.items()}
    for mode, r in res.items():
        print(f"  {mode}: worker peak {r['worker_peak_kib'] / 1024:,.0f} MiB (baseline "
              f"{r['baseline_kib'] / 1024:,.0f} MiB, {r['polls']} polls, "
              f"{r['seconds']:.1f}s)" + (f", ru_maxrss in make_windows "
                                         f"{r['ru_maxrss_kib'] / 1024:,.0f} MiB"
                                         if r["ru_maxrss_kib"] else ""), flush=True)
    assert res["windower"]["windows"] == res["plain"]["windows"], res
    assert res["windower"]["worker_peak_kib"] > 0 and res["plain"]["worker_peak_kib"] > 0, res
    res["ratio"] = res["plain"]["worker_peak_kib"] / res["windower"]["worker_peak_kib"]
    return res


# ---------------------------------------------------------------------- report
def _load_note(res: dict[str, Any], jobs: tuple[str, ...]) -> str:
    """Median over rounds of the largest foreign CPU load during ``jobs``."""
    vals = [max(r[j] for j in jobs) for r in res.get("foreign_cores", [])]
    return f"other load: median {statistics.median(vals):.2f} cores" if vals else ""


def measured(results: dict[str, Any], smoke: bool = False) -> list[dict[str, Any]]:
    """Every reported ratio with its spread and, where there is one, its target and status.

    ``status`` is PASS/FAIL, ``n/a`` (smoke: tiny, cold timings) or empty (no target)."""
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float, lo: float | None = None, hi: float | None = None,
            note: str = "", check: bool = False) -> None:
        goal = TARGETS.get(name)
        ok = None
        if check:
            ok = bool(value)
        elif goal:
            op, target = goal
            ok = {"<=": value <= target, ">=": value >= target, "==": value == target}[op]
        status = "" if ok is None else ("PASS" if ok else "FAIL")
        if smoke and goal and not check:
            status = "n/a (smoke)"
        rows.append({"name": name, "measure": name, "value": value, "measured": value,
                     "min": lo, "max": hi, "note": note,
                     "target": f"{goal[0]} {goal[1]}" if goal and not check else
                     ("all" if check else ""), "pass": ok, "status": status, "check": check})

    if "scoring" in results:
        r = results["scoring"]
        s = r["summary"]
        add("scoring B/A (rebalance=auto)", s["B/A auto"]["median"], s["B/A auto"]["min"],
            s["B/A auto"]["max"], _load_note(r, ("A auto", "B auto")))
        add("scoring B/A (rebalance=never)", s["B/A never"]["median"], s["B/A never"]["min"],
            s["B/A never"]["max"], _load_note(r, ("A never", "B never")))
        if "check" in r:
            add("scoring: every row scored, same predictions", 1.0, check=True,
                note=f"{r['rows']:,} rows x 4 jobs")
    if "training" in results:
        t = results["training"]
        s = t["summary"]
        add("training B/A", s["B/A"]["median"], s["B/A"]["min"], s["B/A"]["max"],
            _load_note(t, ("A", "B")))
        done = sum(1 for f in t["fits"] if f["error"] is None)
        add("training: every fit finished", float(t["all_finished"]), check=True,
            note=f"{done} of {len(t['fits'])} fits, timeout {t.get('timeout_s', 0):.0f}s each")
    if "windowing" in results:
        w = results["windowing"]
        s = w["summary"]
        err = w.get("defaults_error")
        add("windowing: runs with Spark's defaults", float(err is None), check=True,
            note=("raised: " + err[:120] + "...") if err else "")
        workaround = (f"; with {RANGE_SAMPLE_KEY}={w['range_sample']:,}"
                      if w.get("range_sample") else "")
        add("windowing B/A", s["B/A"]["median"], s["B/A"]["min"], s["B/A"]["max"],
            _load_note(w, ("A", "B")) + workaround)
        a = w["agreement"]
        add("windowing: split = unsplit = plain on B", float(a["identical"] and a["complete"]),
            check=True, note=f"{a['checksums']['split']['windows']:,} windows"
            + (", rows exactly equal" if a.get("exact_rows_equal") else ", count + hash"))
        m = w["memory"]
        if "ratio" in m:
            add("windowing: plain peak / windower peak", m["ratio"],
                note=f"{m['plain']['worker_peak_kib'] / 1024:,.0f} / "
                     f"{m['windower']['worker_peak_kib'] / 1024:,.0f} MiB worker peak; "
                     f"baseline {m['plain']['baseline_kib'] / 1024:,.0f} MiB")
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """One Markdown table: measure, median, min, max, target, status, note."""
    lines = ["| measure | median | min | max | target | status | note |",
             "| --- | ---: | ---: | ---: | --- | --- | --- |"]

    def f(v: float | None) -> str:
        return "" if v is None else f"{v:.3f}"

    for r in rows:
        value = ("yes" if r["value"] else "NO") if r["check"] else f(r["value"])
        lines.append(f"| {r['name']} | {value} | {f(r['min'])} | {f(r['max'])} | "
                     f"{r['target']} | {r['status']} | {r['note']} |")
    return "\n".join(lines)


def format_seconds(results: dict[str, Any]) -> str:
    """Median seconds of each timed job."""
    lines = ["| benchmark | job | median s | min s | max s |", "| --- | --- | ---: | ---: | ---: |"]
    for bench in BENCHES:
        if bench not in results:
            continue
        for job, v in results[bench]["summary"].items():
            if "/" not in job:
                lines.append(f"| {bench} | {job} | {v['median']:.2f} | {v['min']:.2f} | "
                             f"{v['max']:.2f} |")
    return "\n".join(lines)


def header(cfg: Config) -> str:
    """One paragraph naming the settings of the run."""
    parts = []
    if "scoring" in cfg.only:
        parts.append(f"scoring: {cfg.score_rows:,} rows x {SCORING_FEATURES}, hidden "
                     f"{list(cfg.score_hidden)}, {cfg.score_rounds} rounds after {cfg.warmup} "
                     "warm-up")
    if "training" in cfg.only:
        parts.append(f"training: {cfg.train_rows:,} rows x {TRAIN_FEATURES}, maxEpochs "
                     f"{cfg.train_epochs}, {cfg.train_rounds} rounds after {cfg.warmup} warm-up, "
                     f"timeout {cfg.train_timeout:.0f}s per fit")
    if "windowing" in cfg.only:
        parts.append(f"windowing: {cfg.window_rows:,} rows, {cfg.window_keys} keys, hot share "
                     f"{cfg.hot_share}, T={cfg.window_length}, step={cfg.window_step}, horizon "
                     f"{cfg.horizon}, maxRowsPerTask {cfg.max_rows_per_task:,}, "
                     f"{cfg.window_rounds} rounds after {cfg.warmup} warm-up")
    line = "; ".join(parts)
    if cfg.smoke:
        line += ". SMOKE: correctness asserted; timings are cold and not meaningful"
    return line


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmarks, print the tables, and return the results."""
    cfg, args = parse_args(argv)
    if args.mem_child:
        res = mem_child(cfg, args.mem_child, args.range_sample or None)
        print(MEM_TAG + json.dumps(res), flush=True)
        return res
    spark, created = get_spark()
    if cfg.smoke and created:
        spark.conf.set("spark.sql.shuffle.partitions", "8")  # tiny data: fewer, cheaper tasks
    start = time.perf_counter()
    results: dict[str, Any] = {}
    try:
        bench = {"scoring": bench_scoring, "training": bench_training,
                 "windowing": bench_windowing}
        for name in BENCHES:
            if name in cfg.only:
                results[name] = bench[name](spark, cfg)
    finally:
        if created:
            spark.stop()
    rows = measured(results, cfg.smoke)
    print("\n" + header(cfg) + "\n")
    print(format_table(rows))
    print("\n" + format_seconds(results))
    print(f"\ntotal {time.perf_counter() - start:.0f}s", flush=True)
    # "targets": the rows with a target or a correctness check (bench/run_all reads them);
    # "measured": every row of the table, informational ones (no target) included.
    return {"config": cfg._asdict(), **results, "measured": rows,
            "targets": [r for r in rows if r["pass"] is not None]}


if __name__ == "__main__":
    main()
