# The two set-up commands of the README. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
export SPARK_LOCAL_IP := 127.0.0.1

# The support matrix's other legs (see README, "Supported versions"): pyspark 3.5 LTS and 4.0,
# each in its own environment, running the tests marked `compat`.
VENV35   ?= .venv-spark35
VENV40   ?= .venv-spark40
STAMP35  := $(VENV35)/.installed
STAMP40  := $(VENV40)/.installed
PYTEST   := -m pytest -q -p no:cacheprovider
COMPAT   := $(PYTEST) -m compat tests/spark

.PHONY: demo test test-compat bench venv compat-venvs clean

venv: $(STAMP)

compat-venvs: $(STAMP35) $(STAMP40)

$(STAMP35): requirements/spark35.txt pyproject.toml
	$(PYTHON) -m venv $(VENV35)
	$(VENV35)/bin/python -m pip install -q --upgrade pip
	$(VENV35)/bin/python -m pip install -q -r requirements/spark35.txt
	# petastorm pins setuptools<70, which pip cannot reconcile with torch: its own
	# dependencies are in spark35.txt.
	$(VENV35)/bin/python -m pip install -q --no-deps petastorm==0.13.1
	$(VENV35)/bin/python -m pip install -q --no-deps -e .
	touch $@

$(STAMP40): requirements/spark40.txt pyproject.toml
	$(PYTHON) -m venv $(VENV40)
	$(VENV40)/bin/python -m pip install -q --upgrade pip
	$(VENV40)/bin/python -m pip install -q -r requirements/spark40.txt
	$(VENV40)/bin/python -m pip install -q --no-deps -e .
	touch $@

$(STAMP): requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

## Run the main job: the fraud_detection pipeline on generated data, on a local Spark.
demo: $(STAMP)
	$(PY) -m spark_dl.cli run conf/fraud_detection.yaml

## Run the test suite: all of it on the pinned stack, then the `compat` tests on pyspark 3.5
## and 4.0. Their environments are built in the background while the main suite runs.
test: $(STAMP)
	@$(MAKE) --no-print-directory compat-venvs > .compat-venvs.log 2>&1 & venvs=$$!; \
	start=$$(date +%s); \
	$(PY) $(PYTEST) --durations=25; main=$$?; \
	echo "== main suite (pyspark 4.3): exit $$main in $$(( $$(date +%s) - start )) s"; \
	wait $$venvs || { cat .compat-venvs.log; echo "== building the compat environments failed"; exit 1; }; \
	start=$$(date +%s); \
	SPARK_DL_PEER_PYTHON=$(abspath $(PY)) $(VENV35)/bin/python $(COMPAT); leg35=$$?; \
	echo "== compat leg pyspark 3.5: exit $$leg35 in $$(( $$(date +%s) - start )) s"; \
	start=$$(date +%s); \
	SPARK_DL_PEER_PYTHON=$(abspath $(PY)) $(VENV40)/bin/python $(COMPAT); leg40=$$?; \
	echo "== compat leg pyspark 4.0: exit $$leg40 in $$(( $$(date +%s) - start )) s"; \
	test $$main -eq 0 -a $$leg35 -eq 0 -a $$leg40 -eq 0

## Only the compat tests, on pyspark 3.5 and 4.0 (their environments are built first).
test-compat: $(STAMP) compat-venvs
	SPARK_DL_PEER_PYTHON=$(abspath $(PY)) $(VENV35)/bin/python $(COMPAT)
	SPARK_DL_PEER_PYTHON=$(abspath $(PY)) $(VENV40)/bin/python $(COMPAT)

## Run the benchmarks (minutes; not part of the tests).
bench: $(STAMP)
	$(PY) -m bench.scoring

clean:
	rm -rf $(VENV) $(VENV35) $(VENV40) build *.egg-info .compat-venvs.log
