"""Library settings that a cluster operator tunes, as namespaced Spark confs (``spark.dl.*``).

This is the only module that reads them.
"""

from __future__ import annotations

from typing import Any

#: Seconds a collective operation may wait for a peer before training fails.
COLLECTIVE_TIMEOUT = ("spark.dl.train.collectiveTimeoutSeconds", 600)
#: Seconds fit() (localMode=False) waits for executors to register enough task slots for
#: numProcesses before refusing; executors of a just-started application join over seconds.
SLOT_WAIT = ("spark.dl.train.slotWaitSeconds", 60)
#: Training attempts per fit() when the maxTrainAttempts Param is unset.
MAX_TRAIN_ATTEMPTS = ("spark.dl.train.maxAttempts", 2)
#: Rows per forward pass when scoring (Arrow batches are split into chunks of this size).
INFERENCE_BATCH_SIZE = ("spark.dl.inference.batchSize", 4096)
#: Compute threads per scoring task (torch's intra-op threads, or OpenBLAS's for the numpy
#: MLP); 0 means spark.task.cpus, the cores Spark reserves for each task.
INFERENCE_THREADS = ("spark.dl.inference.threadsPerTask", 0)
#: How the scoring workers run the network: "auto" (the zoo's mlp on the CPU in float32 runs
#: as numpy matrix products, without importing torch; everything else in torch) or "torch".
INFERENCE_BACKEND = ("spark.dl.inference.backend", "auto")
#: Arrow batches a scoring task reads ahead of its forward pass (0: none).
INFERENCE_PREFETCH = ("spark.dl.inference.prefetchBatches", 1)

#: Which vectorized UDF scoring and the text stages use: "auto" (arrow_udf where pyspark
#: has it, else pandas_udf), "arrow" or "pandas" (see spark_dl.compat.arrow_udf).
UDF_KIND = ("spark.dl.udf.kind", "auto")

#: How model weights reach the scoring workers under Spark Connect, which has no broadcast
#: variables: "auto", "closure" or "file" (see spark_dl.compat.broadcast).
CONNECT_WEIGHTS = ("spark.dl.connect.weightsTransport", "auto")

#: Where dataFeed="petastorm" materializes training data as Parquet (petastorm's
#: make_spark_converter): a directory Spark can write and every training rank can read.
PETASTORM_CACHE_DIR = ("spark.dl.petastorm.cacheDir", "")
#: Track fits in MLflow when the mlflowTracking Param is unset ("true" or "false").
MLFLOW_TRACKING = ("spark.dl.mlflow.tracking", "false")

#: Modules (or "module:Class" entries) a saved model may name as its network on load,
#: comma-separated; built-in networks are always allowed. Importing a module runs it.
ALLOWED_MODULES = ("spark.dl.load.allowedModules", "")


def allowed_modules(spark: Any) -> list[str]:
    """The ``spark.dl.load.allowedModules`` entries."""
    return [e.strip() for e in get_str(spark, ALLOWED_MODULES).split(",") if e.strip()]


def get_str(spark: Any, setting: tuple[str, str]) -> str:
    """Read a string ``spark.dl.*`` conf."""
    key, default = setting
    return str(spark.conf.get(key, default))


def get_int(spark: Any, setting: tuple[str, int]) -> int:
    """Read an integer ``spark.dl.*`` conf, with the error naming the key on a bad value."""
    key, default = setting
    raw = spark.conf.get(key, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Spark conf {key!r} must be an integer. Got {raw!r}.") from None


#: Values of spark.dl.inference.backend.
INFERENCE_BACKENDS = ("auto", "torch")


def inference_backend(spark: Any) -> str:
    """``spark.dl.inference.backend``, checked."""
    value = get_str(spark, INFERENCE_BACKEND)
    if value not in INFERENCE_BACKENDS:
        raise ValueError(f"Spark conf {INFERENCE_BACKEND[0]!r} must be one of "
                         f"{list(INFERENCE_BACKENDS)}. Got {value!r}.")
    return value


def task_cpus(spark: Any) -> int:
    """``spark.task.cpus`` (default 1)."""
    return int(spark.conf.get("spark.task.cpus", "1"))


def max_result_size(spark: Any) -> int:
    """``spark.driver.maxResultSize`` in bytes (0 means unlimited)."""
    return byte_string_as_bytes(spark.conf.get("spark.driver.maxResultSize", "1g"),
                                "spark.driver.maxResultSize")


_BYTE_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20,
               "g": 2**30, "gb": 2**30, "t": 2**40, "tb": 2**40, "p": 2**50, "pb": 2**50}


def byte_string_as_bytes(raw: str, key: str) -> int:
    """A Spark size string ("1g", "512m", "100") in bytes, as Spark's
    ``JavaUtils.byteStringAsBytes`` reads it (binary multiples, no unit = bytes)."""
    import re

    match = re.fullmatch(r"\s*(-?\d+)\s*([a-z]*)\s*", raw.lower())
    if not match or match.group(2) not in _BYTE_UNITS:
        raise ValueError(f"Spark conf {key!r} must be a size such as '1g' or '512m'. "
                         f"Got {raw!r}.")
    return int(match.group(1)) * _BYTE_UNITS[match.group(2)]
