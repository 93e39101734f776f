"""Feature stages that shape DataFrames into deep-learning inputs (sequence windows, ...)."""

from spark_dl.feature.sequence import SequenceWindower

__all__ = ["SequenceWindower"]
