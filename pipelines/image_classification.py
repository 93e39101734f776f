"""The image_classification pipeline: `spark-submit pipelines/image_classification.py --config conf/image_classification.yaml`.

The Pipeline itself is built in `spark_dl/jobs/image_classification.py` (`build_pipeline`), so that
`spark-dl run conf/image_classification.yaml` and notebooks run the same code; see the README.
"""

import sys

from spark_dl.cli import run_pipeline

if __name__ == "__main__":
    sys.exit(run_pipeline("image_classification", sys.argv[1:]))
