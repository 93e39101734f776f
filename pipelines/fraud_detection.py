"""The fraud_detection pipeline: `spark-submit pipelines/fraud_detection.py --config conf/fraud_detection.yaml`.

The Pipeline itself is built in `spark_dl/jobs/fraud_detection.py` (`build_pipeline`), so that
`spark-dl run conf/fraud_detection.yaml` and notebooks run the same code; see the README.
"""

import sys

from spark_dl.cli import run_pipeline

if __name__ == "__main__":
    sys.exit(run_pipeline("fraud_detection", sys.argv[1:]))
