"""The equipment_fault pipeline: `spark-submit pipelines/equipment_fault.py --config conf/equipment_fault.yaml`.

The Pipeline itself is built in `spark_dl/jobs/equipment_fault.py` (`build_pipeline`), so that
`spark-dl run conf/equipment_fault.yaml` and notebooks run the same code; see the README.
"""

import sys

from spark_dl.cli import run_pipeline

if __name__ == "__main__":
    sys.exit(run_pipeline("equipment_fault", sys.argv[1:]))
