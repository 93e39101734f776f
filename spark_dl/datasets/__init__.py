"""Scenario data made on the executors, reproducible by seed, with realistic skew."""

from spark_dl.datasets.sensors import sensor_series
from spark_dl.datasets.text import reviews

__all__ = ["reviews", "sensor_series"]
