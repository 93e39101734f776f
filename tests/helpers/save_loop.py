"""Overwrite-save a model and a PipelineModel in turn until killed:
``python save_loop.py SRC DST``.

SRC holds a saved model in ``SRC/model`` and a saved PipelineModel in ``SRC/pipeline``.
The loop saves the model to ``DST/model`` through its own writer and the PipelineModel to
``DST/pipeline`` through ``spark_dl.persistence.save_atomic``, alternately, so a kill
lands in either kind of save.
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
    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").getOrCreate())
    model = TorchClassificationModel.load(os.path.join(src, "model"))
    pipeline = PipelineModel.load(os.path.join(src, "pipeline"))
    i = 0
    while True:
        if i % 2:
            save_atomic(pipeline, os.path.join(dst, "pipeline"), overwrite=True)
        else:
            model.write().overwrite().save(os.path.join(dst, "model"))
        i += 1
        print(f"saved {i}", flush=True)
