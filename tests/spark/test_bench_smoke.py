"""The scoring benchmark keeps working: its tiny smoke mode runs in the suite."""

from __future__ import annotations

import importlib.util
import os

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "scoring.py")


@pytest.mark.slow
def test_scoring_benchmark_smoke(spark):
    spec = importlib.util.spec_from_file_location("bench_scoring", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--smoke"])
    assert set(results["models"]) == {"light", "heavy"}  # each asserted every row came back
