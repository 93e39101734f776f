"""The sentiment pipeline: `spark-submit pipelines/sentiment.py --config conf/sentiment.yaml`.

The Pipeline itself is built in `spark_dl/jobs/sentiment.py` (`build_pipeline`), so that
`spark-dl run conf/sentiment.yaml` and notebooks run the same code; see the README.
"""

import sys

from spark_dl.cli import run_pipeline

if __name__ == "__main__":
    sys.exit(run_pipeline("sentiment", sys.argv[1:]))
