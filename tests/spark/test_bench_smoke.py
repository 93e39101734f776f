"""The benchmarks keep working: each one's tiny smoke mode runs in the suite.

Smoke runs are cold and tiny, so their figures are not checked against targets; each
benchmark asserts its own correctness (every row scored, outputs equal) in smoke mode.
"""

from __future__ import annotations

import importlib
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _load(name: str):
    return importlib.import_module(f"bench.{name}")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,args,check", [
    # the light MLP only: one fit; the heavy MLP and the CNN share its code path, and the
    # CNN's scoring is tested in test_image.py and tests/gpu
    ("scoring", ["--only", "light"],
     lambda r: set(r["models"]) == {"light/array", "light/vector"}
     and all(m["reduced"]["max_abs_prob_diff"] < 0.1 for m in r["models"].values())),
    ("feed", [], lambda r: r["median"]["ours"] > 0 and r["median"]["pyspark"] > 0),
    ("partitions", [], lambda r: r["median"]["t200"] > 0),
    ("training", [],
     lambda r: r["median"]["ours_startup"] > 0 and "first_step" in r["stages"]),
    ("memory", [], lambda r: all(r["rounds"][0][job]["scored_rows"] == r["config"]["rows"]
                                 and r["rounds"][0][job]["worker_peak_kib"] > 0
                                 for job in ("ours_1", "ours_many", "pbu_1"))),
])
def test_benchmark_smoke(spark, name, args, check, monkeypatch):
    monkeypatch.syspath_prepend(os.path.abspath(ROOT))  # bench is a package at the root
    module = _load(name)
    result = module.main(["--smoke", *args])
    assert check(result)
    assert all(row.benchmark.split("/")[0] == name for row in module.rows(result))
