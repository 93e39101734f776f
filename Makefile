# The two set-up commands of the README. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

## Run the main job: the fraud_detection pipeline on generated data, on a local Spark.
demo: $(STAMP)
	$(PY) -m spark_dl.cli run conf/fraud_detection.yaml

## Run the test suite.
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --durations=25

## Run the benchmarks (minutes; not part of the tests).
bench: $(STAMP)
	$(PY) -m bench.scoring

clean:
	rm -rf $(VENV) build *.egg-info
