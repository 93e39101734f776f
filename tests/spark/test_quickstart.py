"""The README quickstart is real code: identical to pipelines/quickstart.py, and it runs."""

from __future__ import annotations

import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "pipelines"))


def _readme_block() -> str:
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    match = re.search(r"<!-- quickstart -->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README lost its quickstart block"
    return match.group(1)


def _script_block() -> str:
    src = open(os.path.join(ROOT, "pipelines", "quickstart.py"), encoding="utf-8").read()
    return textwrap.dedent(src.split("# --8<-- quickstart\n")[1].rsplit("    # --8<--", 1)[0])


def test_readme_quickstart_matches_the_script():
    expected = _script_block().replace('save_path', '"/tmp/spark_dl_quickstart"')
    assert _readme_block().strip() == expected.strip()


def test_quickstart_runs_and_learns(spark, tmp_path):
    import quickstart

    assert quickstart.main(str(tmp_path / "qs")) > 0.85
