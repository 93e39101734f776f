"""Skewed data: profile it (:func:`profile`) and rebalance it (:class:`Rebalancer`)."""

from spark_dl.skew.profile import PartitionStats, SkewProfile, partition_stats, profile
from spark_dl.skew.rebalance import Rebalancer, rebalance

__all__ = ["PartitionStats", "SkewProfile", "partition_stats", "profile", "Rebalancer",
           "rebalance"]
