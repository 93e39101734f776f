"""Python-worker peak memory while scoring: 1 partition against 50, and against
``predict_batch_udf``.

Scoring streams Arrow batches through a Python worker, so a worker's memory should not
depend on how many rows its partition holds, and should stay below pyspark's
``predict_batch_udf`` (a pandas UDF that turns each batch into a pandas Series of numpy
arrays before stacking it) on the same job.

**Input.** ``--rows`` rows (default 10,000,000) of ``features`` array<float>[64] (the
``randn`` values of ``bench/scoring.py``'s ``make_data``) and a ``label`` double, made
inside Spark with ``spark.range`` and written once to a parquet directory in a temporary
folder as ``--many`` (50) files of equal rows. The network is ``bench/scoring.py``'s light
MLP (64 -> 32 -> 2, ``fit_model``: ``TorchClassifier``, one epoch on 5,000 rows), fitted
once and saved beside the data. Every job reads that parquet and loads that model.

**Jobs**, each in its own fresh ``local[2]`` SparkSession subprocess (a peak is per process):

* ``ours_1``: ``model.transform(df.coalesce(1))``: all rows in one partition, one task;
* ``ours_many``: ``model.transform(df)`` with one parquet file per partition (50 tasks; file
  splitting set so: ``spark.sql.files.maxPartitionBytes`` = ``openCostInBytes`` = the
  largest file's size);
* ``pbu_1``: ``bench/scoring.py``'s ``predict_batch_udf`` column (same module, 1 torch
  thread, batch 4096, returns raw logits, probabilities and prediction) on
  ``df.coalesce(1)``, the same single-partition layout as ``ours_1``.

Each is forced with a ``noop`` write. ``rebalance="never"`` keeps the layouts as stated
(``auto`` would leave both alone: max/mean rows per partition is 1.0, but it costs one
more pass over the data). ``spark.dl.inference.batchSize`` is 4096 (its default) and
``spark.sql.execution.arrow.maxRecordsPerBatch`` is left at Spark's default (10000);
both are read back from the session and reported.

**Measure.** ``bench/memsample.py``'s sampler: a thread polls ``/proc/<pid>/status`` (``VmHWM``,
the kernel's peak RSS) of every ``pyspark.daemon`` process below the child's driver every
50 ms; the figure is the largest peak of any single forked Python worker. Nothing runs in
a job's session before the measured job, so its workers start with it. A fourth fresh
session per round measures the worker floors, cumulatively in the same workers: idle (an
identity ``mapInArrow``: pyarrow imported), then ``import torch`` (which both approaches
need), then pandas (an identity ``mapInPandas``, ``bench/memsample.py``'s baseline). In round
1, after the sampler has stopped, each job counts its predictions and sums them (ours and
``predict_batch_udf`` must agree) and reports which of pandas and torch its workers
imported. The jobs run in ``--rounds`` (3) rounds, the order reversed every other round;
the report gives medians (min, max) of each peak and of the per-round ratios.

**Targets.** ``max(peak(ours_1) / peak(ours_many), peak(ours_many) / peak(ours_1)) <= 1.2``,
and ``peak(ours_1) / peak(pbu_1) <= 0.7``.

Run ``python -m bench.memory`` (``--help`` for sizes). ``--smoke`` runs tiny sizes (4,000
rows, 5 partitions, one round) in the current SparkSession, with no subprocesses and
reused workers, so its figures mean nothing; it asserts correctness: every job scored
every row, ours and ``predict_batch_udf`` predict the same classes, the partition counts
are as stated, and the sampler found the workers. ``main(argv)`` returns the results;
``targets`` holds the two target rows (``bench/run_all`` reads them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple

from bench.harness import Row, get_spark, noop_write, summarize
from bench.memsample import MEM_TAG, WorkerMemory, run_tagged, worker_baseline
from bench.scoring import BATCH_SIZE, NUM_FEATURES, fit_model, predict_batch_column

HIDDEN = [32]
JOBS = ("ours_1", "ours_many", "pbu_1")
FLOORS = {"idle": "idle worker (identity mapInArrow: pyarrow)", "torch": "+ import torch",
          "torch_pandas": "+ pandas (identity mapInPandas)"}
PARTITIONS_TARGET = 1.2
PBU_TARGET = 0.7
BATCH_KEY = "spark.dl.inference.batchSize"
ARROW_KEY = "spark.sql.execution.arrow.maxRecordsPerBatch"
KIB_PER_MIB = 1024


class Config(NamedTuple):
    """Command-line settings."""

    rows: int
    many: int
    rounds: int
    timeout: float
    smoke: bool


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    """Parse ``argv`` (``None``: ``sys.argv[1:]``); ``--smoke`` overrides the sizes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--many", type=int, default=50, help="partitions of the many-case")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per child job")
    p.add_argument("--smoke", action="store_true", help="tiny, one round, checks")
    # internal: one measured job in a fresh SparkSession
    p.add_argument("--child", choices=("floor",) + JOBS, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.smoke:
        return Config(rows=4_000, many=5, rounds=1, timeout=300.0, smoke=True), a
    return Config(a.rows, a.many, a.rounds, a.timeout, smoke=False), a


# ---------------------------------------------------------------------- input and model
def write_data(spark: Any, rows: int, files: int, path: str) -> None:
    """``rows`` rows of ``features`` array<float>[64] and ``label``, made in Spark and
    written to ``path`` as ``files`` parquet files of equal rows."""
    from pyspark.sql import functions as F

    feats = F.array(*[F.randn(i) for i in range(NUM_FEATURES)]).cast("array<float>")
    (spark.range(0, rows, 1, files)
     .select(feats.alias("features"))
     .withColumn("label", (F.col("features")[0] + F.col("features")[1] > 0).cast("double"))
     .write.mode("overwrite").parquet(path))


def parquet_files(path: str) -> list[str]:
    """The data files of the parquet directory ``path``."""
    return sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet"))


def prepare(spark: Any, cfg: Config, workdir: str) -> dict[str, Any]:
    """Write the input and the fitted model under ``workdir``; their paths and sizes."""
    data, model_path = os.path.join(workdir, "data"), os.path.join(workdir, "model")
    start = time.perf_counter()
    write_data(spark, cfg.rows, cfg.many, data)
    files = parquet_files(data)
    assert len(files) == cfg.many, f"expected {cfg.many} parquet files, got {len(files)}"
    df = spark.read.parquet(data)
    n = df.count()
    assert n == cfg.rows, f"wrote {n} rows, expected {cfg.rows}"
    written = time.perf_counter() - start
    fit_model(df, HIDDEN).write().overwrite().save(model_path)
    sizes = [os.path.getsize(f) for f in files]
    print(f"  input: {cfg.rows:,} rows x {NUM_FEATURES} float32 in {len(files)} parquet files "
          f"({sum(sizes) / 2**20:,.0f} MiB) written in {written:.0f}s; model fitted and saved "
          f"in {time.perf_counter() - start - written:.0f}s", flush=True)
    return {"data": data, "model": model_path, "files": len(files),
            "bytes": sum(sizes), "max_file_bytes": max(sizes)}


# ---------------------------------------------------------------------- one child job
def layout_conf(job: str, data: str) -> dict[str, str]:
    """Session settings of ``job``: the batch size, and for the many-case file splitting
    that makes each parquet file one partition."""
    settings = {BATCH_KEY: str(BATCH_SIZE)}
    if not job.endswith("_1"):
        biggest = str(max(os.path.getsize(f) for f in parquet_files(data)))
        settings["spark.sql.files.maxPartitionBytes"] = biggest
        settings["spark.sql.files.openCostInBytes"] = biggest  # no two files share a split
    return settings


@contextmanager
def session_conf(spark: Any, settings: dict[str, str]) -> Iterator[None]:
    """``settings`` set on ``spark`` for the duration, then restored."""
    previous = {k: spark.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def scored(job: str, model: Any, df: Any) -> tuple[Any, str]:
    """``df`` with ``job``'s scoring column(s), and the name of its prediction column."""
    if job.startswith("ours"):
        return model.transform(df), "prediction"
    udf = predict_batch_column(model.torchModule, BATCH_SIZE)
    return df.withColumn("scored", udf("features")), "scored.pred"


def score_job(spark: Any, job: str, data: str, model_path: str, check: bool) -> dict[str, Any]:
    """Score the parquet at ``data`` with ``job`` in ``spark``, sampling the peak memory of
    the Python workers below this process; with ``check``, then count the scored rows and
    ask the workers which of pandas and torch they imported."""
    from pyspark.sql import functions as F

    from spark_dl import TorchClassificationModel

    with session_conf(spark, layout_conf(job, data)):
        model = TorchClassificationModel.load(model_path)
        model.set(model.rebalance, "never")
        df = spark.read.parquet(data)
        if job.endswith("_1"):
            df = df.coalesce(1)
        out, pred = scored(job, model, df)
        sampler = WorkerMemory(os.getpid())
        sampler.start()  # nothing runs before the job: its workers start with it
        start = time.perf_counter()
        noop_write(out)
        secs = time.perf_counter() - start
        sampler.stop()
        workers = sampler.workers()
        res: dict[str, Any] = {
            "job": job, "seconds": secs, "partitions": df.rdd.getNumPartitions(),
            "worker_peak_kib": max(workers.values(), default=0),
            "worker_peaks_kib": sorted(workers.values(), reverse=True),
            "daemon_peak_kib": max(sampler.daemons().values(), default=0),
            "polls": sampler.polls, BATCH_KEY: spark.conf.get(BATCH_KEY),
            ARROW_KEY: spark.conf.get(ARROW_KEY, "10000"),
        }
        if check:  # after the sampler stopped: does not touch the measured peak
            res["worker_modules"] = worker_modules(spark)
            r = out.agg(F.count(pred), F.sum(pred)).first()
            res["scored_rows"], res["prediction_sum"] = int(r[0]), float(r[1] or 0.0)
    return res


def worker_modules(spark: Any) -> list[str]:
    """Which of pandas and torch the (reused) Python workers have imported."""
    import pyarrow as pa

    def probe(batches: Iterator[Any]) -> Iterator[Any]:
        for _ in batches:
            pass
        names = [m for m in ("pandas", "torch") if m in sys.modules]
        yield pa.RecordBatch.from_pydict({"m": [",".join(names)]})

    rows = spark.range(0, 2, 1, 2).mapInArrow(probe, "m string").collect()
    return sorted({m for r in rows for m in r.m.split(",") if m})


def floor_job(spark: Any) -> dict[str, Any]:
    """Worker floors, cumulative in the same workers: idle (an identity ``mapInArrow``:
    pyarrow), then torch imported, then pandas imported (``bench/memsample.py``'s baseline)."""
    sampler = WorkerMemory(os.getpid())
    sampler.start()

    def step(fn: Callable[[Iterator[Any]], Iterator[Any]]) -> int:
        spark.range(0, 1000, 1, 2).mapInArrow(fn, "id long").count()
        time.sleep(0.3)
        sampler.poll()
        return max(sampler.workers().values(), default=0)

    # Nested functions: cloudpickle ships them by value (this module is not importable there).
    def identity(batches: Iterator[Any]) -> Iterator[Any]:
        return batches

    def import_torch(batches: Iterator[Any]) -> Iterator[Any]:
        import torch  # noqa: F401

        return batches

    idle = step(identity)
    torch_floor = step(import_torch)
    pandas_floor = worker_baseline(spark, sampler)
    sampler.stop()
    return {"job": "floor", "idle_kib": idle, "torch_kib": torch_floor,
            "torch_pandas_kib": pandas_floor, "polls": sampler.polls}


def child(job: str, data: str, model_path: str, check: bool) -> dict[str, Any]:
    """In a fresh process and SparkSession: :func:`score_job` or :func:`floor_job`."""
    spark, _ = get_spark(f"spark_dl-bench-memory-{job}")
    try:
        if job == "floor":
            return floor_job(spark)
        return score_job(spark, job, data, model_path, check)
    finally:
        spark.stop()


def run_child(cfg: Config, job: str, prep: dict[str, Any], check: bool) -> dict[str, Any]:
    """Run :func:`child` for ``job`` in a subprocess and return what it printed."""
    cmd = [sys.executable, "-m", "bench.memory", "--child", job, "--data", prep["data"],
           "--model", prep["model"]]
    if check:
        cmd.append("--check")
    return report(run_tagged(cmd, job, cfg.timeout))


def report(res: dict[str, Any]) -> dict[str, Any]:
    """Print one job's figures; return ``res``."""
    took = f", process {res['process_seconds']:.0f}s" if "process_seconds" in res else ""
    if res["job"] == "floor":
        print(f"  floor: idle worker {mib(res['idle_kib'])} MiB, + torch "
              f"{mib(res['torch_kib'])} MiB, + pandas {mib(res['torch_pandas_kib'])} MiB"
              + took, flush=True)
        return res
    print(f"  {res['job']}: worker peak {mib(res['worker_peak_kib'])} MiB, "
          f"{res['partitions']} partition(s), {len(res['worker_peaks_kib'])} workers, "
          f"{res['polls']} polls, job {res['seconds']:.1f}s" + took
          + (f"; then counted {res['scored_rows']:,} predictions (sum "
             f"{res['prediction_sum']:,.0f}), workers had imported {res['worker_modules']}"
             if "scored_rows" in res else ""),
          flush=True)
    return res


def mib(kib: float) -> str:
    """KiB as a MiB string."""
    return f"{kib / KIB_PER_MIB:,.0f}"


# ---------------------------------------------------------------------- rounds and report
def ratios(r: dict[str, dict[str, Any]]) -> dict[str, float]:
    """One round's peaks and floors (KiB), job seconds, and ratios."""
    p1, pm, pb = (r[j]["worker_peak_kib"] for j in JOBS)
    idle = r["floor"]["idle_kib"]
    return {
        **{f"peak {j}": r[j]["worker_peak_kib"] for j in JOBS},
        **{f"above idle {j}": r[j]["worker_peak_kib"] - idle for j in JOBS},
        **{f"seconds {j}": r[j]["seconds"] for j in JOBS},
        **{f"floor {k}": r["floor"][f"{k}_kib"] for k in FLOORS},
        "peak(1)/peak(many)": p1 / pm,
        "peak(many)/peak(1)": pm / p1,
        "1 vs many (max of the two)": max(p1 / pm, pm / p1),
        "ours_1/pbu_1": p1 / pb,
        "ours_many/pbu_1": pm / pb,
        "ours_1/pbu_1 above idle worker": (p1 - idle) / max(pb - idle, 1),
    }


def check(cfg: Config, rounds: list[dict[str, dict[str, Any]]]) -> None:
    """Assertions: partitions as stated, the sampler found the workers, and (where
    counted) every row scored with the same predictions by ours and predict_batch_udf."""
    for r in rounds:
        f = r["floor"]
        assert 0 < f["idle_kib"] <= f["torch_kib"] <= f["torch_pandas_kib"], f
        for job in JOBS:
            res = r[job]
            want = 1 if job.endswith("_1") else cfg.many
            assert res["partitions"] == want, (job, res["partitions"], want)
            assert res["worker_peak_kib"] > 0 and res["worker_peaks_kib"], res
            if "scored_rows" in res:
                assert res["scored_rows"] == cfg.rows, (job, res["scored_rows"], cfg.rows)
        if all("scored_rows" in r[j] for j in JOBS):
            sums = {j: r[j]["prediction_sum"] for j in JOBS}
            tol = max(1.0, 1e-3 * cfg.rows)  # argmax may flip on near-ties between batchings
            assert max(sums.values()) - min(sums.values()) <= tol, sums


def format_table(cfg: Config, s: dict[str, dict[str, float]]) -> str:
    """Markdown: peaks per job, the floors, then the ratios with their targets."""
    names = {"ours_1": "ours, 1 partition", "ours_many": f"ours, {cfg.many} partitions",
             "pbu_1": "predict_batch_udf, 1 partition"}
    lines = ["| job | worker peak MiB (median) | min | max | above idle worker MiB "
             "| job seconds |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for j in JOBS:
        p = s[f"peak {j}"]
        lines.append(f"| {names[j]} | {mib(p['median'])} | {mib(p['min'])} | {mib(p['max'])} "
                     f"| {mib(s[f'above idle {j}']['median'])} "
                     f"| {s[f'seconds {j}']['median']:.1f} |")
    lines += ["", "| worker floor (own session, 2 partitions) | MiB (median) | min | max |",
              "| --- | ---: | ---: | ---: |"]
    for k, label in FLOORS.items():
        v = s[f"floor {k}"]
        lines.append(f"| {label} | {mib(v['median'])} | {mib(v['min'])} | {mib(v['max'])} |")
    lines += ["", "| ratio of worker peaks | median | min | max | target | status |",
              "| --- | ---: | ---: | ---: | --- | --- |"]
    goals = {"1 vs many (max of the two)": PARTITIONS_TARGET, "ours_1/pbu_1": PBU_TARGET}
    for key in ("peak(1)/peak(many)", "peak(many)/peak(1)", "1 vs many (max of the two)",
                "ours_1/pbu_1", "ours_many/pbu_1", "ours_1/pbu_1 above idle worker"):
        v, goal = s[key], goals.get(key)
        status = "" if goal is None else ("n/a (smoke)" if cfg.smoke else
                                          "PASS" if v["median"] <= goal else "FAIL")
        lines.append(f"| {key.replace('many', str(cfg.many))} | {v['median']:.3f} | "
                     f"{v['min']:.3f} | {v['max']:.3f} | "
                     f"{'' if goal is None else f'<= {goal}'} | {status} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, and return the results."""
    cfg, args = parse_args(argv)
    if args.child:
        res = child(args.child, args.data, args.model, args.check)
        print(MEM_TAG + json.dumps(res), flush=True)
        return res
    start = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="spark_dl-bench-memory-")
    spark, created = get_spark()
    try:
        print(f"[memory] {cfg.rows:,} rows; 1 vs {cfg.many} partitions; "
              f"{cfg.rounds} round(s): preparing", flush=True)
        prep = prepare(spark, cfg, workdir)
        if created and not cfg.smoke:
            spark.stop()  # the children should have the machine to themselves
            created = False
        rounds: list[dict[str, dict[str, Any]]] = []
        for i in range(cfg.rounds):
            order = ["floor"] + (list(JOBS) if i % 2 == 0 else list(reversed(JOBS)))
            print(f"  round {i + 1}" + (" (reversed order)" if i % 2 else ""), flush=True)
            first = cfg.smoke or i == 0  # count rows, compare predictions (after sampling)
            if cfg.smoke:  # in this session: no JVM start-ups, but the workers are reused
                rounds.append({j: report(floor_job(spark) if j == "floor" else
                                         score_job(spark, j, prep["data"], prep["model"], first))
                               for j in order})
            else:
                rounds.append({j: run_child(cfg, j, prep, first) for j in order})
        check(cfg, rounds)
    finally:
        if created:
            spark.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    per_round = [ratios(r) for r in rounds]
    s = summarize(per_round)
    settings = {k: rounds[0]["ours_1"][k] for k in (BATCH_KEY, ARROW_KEY)}
    print(f"\nrows={cfg.rows:,} x {NUM_FEATURES} float32 ({prep['bytes'] / 2**20:,.0f} MiB "
          f"parquet, {prep['files']} files), MLP hidden {HIDDEN}, rounds={cfg.rounds}, "
          f"{BATCH_KEY}={settings[BATCH_KEY]}, {ARROW_KEY}={settings[ARROW_KEY]}, "
          f"predict_batch_udf batch_size={BATCH_SIZE}"
          + ("; SMOKE: correctness asserted, figures not meaningful" if cfg.smoke else "")
          + "\n")
    print(format_table(cfg, s))
    targets = []
    for key, goal, measure in (("1 vs many (max of the two)", PARTITIONS_TARGET,
                                f"peak 1 vs {cfg.many} partitions"),
                               ("ours_1/pbu_1", PBU_TARGET, "ours/predict_batch_udf peak")):
        got = s[key]["median"]
        targets.append({"name": key, "measure": measure, "measured": got, "target": goal,
                        "pass": got <= goal})
    print(f"\ntotal {time.perf_counter() - start:.0f}s", flush=True)
    return {"config": cfg._asdict(), "settings": settings, "input": prep, "rounds": rounds,
            "summary": s, "median": {k: v["median"] for k, v in s.items()},
            "targets": targets, "pass": all(t["pass"] for t in targets)}


def rows(r: dict[str, Any]) -> list[Row]:
    """The result rows of :func:`main`'s results (see :class:`bench.harness.Row`)."""
    return [Row("memory", t["measure"], f"{t['measured']:.2f}", f"<= {t['target']}", t["pass"])
            for t in r["targets"]]


if __name__ == "__main__":
    sys.exit(0 if main().get("pass", True) else 1)
