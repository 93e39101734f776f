"""Pretrained Hugging Face models as Spark ML stages (needs ``spark-dl[hf]``).

The stages are imported on first use, so importing :mod:`spark_dl.pretrained.finetune`
(as the torch estimators do) loads neither them nor pandas.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HFTokenizer", "TextEmbedder"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from spark_dl.pretrained import stages

        return getattr(stages, name)
    raise AttributeError(f"module 'spark_dl.pretrained' has no attribute {name!r}")
