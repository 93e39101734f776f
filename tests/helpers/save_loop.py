"""Overwrite-save a model in a loop until killed: ``python save_loop.py SRC DST [pipeline]``.

With ``pipeline``, SRC is a saved PipelineModel and each save goes through
``spark_dl.persistence.save_atomic``; otherwise through the model's own writer.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from pyspark.ml import PipelineModel  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from spark_dl import TorchClassificationModel  # noqa: E402
from spark_dl.persistence import save_atomic  # noqa: E402

if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    pipeline = sys.argv[3:] == ["pipeline"]
    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").getOrCreate())
    model = (PipelineModel if pipeline else TorchClassificationModel).load(src)
    i = 0
    while True:
        if pipeline:
            save_atomic(model, dst, overwrite=True)
        else:
            model.write().overwrite().save(dst)
        i += 1
        print(f"saved {i}", flush=True)
