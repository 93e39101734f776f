"""The recommendation pipeline: `spark-submit pipelines/recommendation.py --config conf/recommendation.yaml`.

The Pipeline itself is built in `spark_dl/jobs/recommendation.py` (`build_pipeline`), so that
`spark-dl run conf/recommendation.yaml` and notebooks run the same code; see the README.
"""

import sys

from spark_dl.cli import run_pipeline

if __name__ == "__main__":
    sys.exit(run_pipeline("recommendation", sys.argv[1:]))
