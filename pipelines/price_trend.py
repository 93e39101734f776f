"""The price_trend pipeline: `spark-submit pipelines/price_trend.py --config conf/price_trend.yaml`.

The Pipeline itself is built in `spark_dl/jobs/price_trend.py` (`build_pipeline`), so that
`spark-dl run conf/price_trend.yaml` and notebooks run the same code; see the README.
"""

import sys

from spark_dl.cli import run_pipeline

if __name__ == "__main__":
    sys.exit(run_pipeline("price_trend", sys.argv[1:]))
