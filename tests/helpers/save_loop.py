"""Overwrite-save a model in a loop until killed: ``python save_loop.py SRC DST``."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from pyspark.sql import SparkSession  # noqa: E402

from spark_dl import TorchClassificationModel  # noqa: E402

if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").getOrCreate())
    model = TorchClassificationModel.load(src)
    i = 0
    while True:
        model.write().overwrite().save(dst)
        i += 1
        print(f"saved {i}", flush=True)
