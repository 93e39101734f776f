"""Scenario data made on the executors, reproducible by seed, with realistic skew."""

from spark_dl.datasets.images import digits, images
from spark_dl.datasets.prices import prices
from spark_dl.datasets.sensors import sensor_series
from spark_dl.datasets.text import reviews
from spark_dl.datasets.transactions import transactions

__all__ = ["digits", "images", "prices", "reviews", "sensor_series", "transactions"]
