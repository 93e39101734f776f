"""Exceptions raised by spark_dl."""

from __future__ import annotations


class TrainingFailedError(RuntimeError):
    """Distributed training did not complete on every rank.

    The message carries the failing rank's own traceback when one was reported.

    Attributes
    ----------
    rank_errors : dict of int to str
        Traceback text reported by each rank that failed, keyed by rank.
    """

    def __init__(self, message: str, rank_errors: dict[int, str] | None = None) -> None:
        super().__init__(message)
        self.rank_errors: dict[int, str] = dict(rank_errors or {})


class UnsafeModelError(ValueError):
    """A model reference or weight file was refused because loading it could run code."""


class CheckpointMismatchError(ValueError):
    """``resume`` found checkpoints, but only ones written by a different fit.

    A fit's checkpoints are fingerprinted by its network, training Params and data; the
    message names this fit and each other fit found, with the values that differ.
    """
