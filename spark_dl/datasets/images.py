"""Synthetic CIFAR-shaped images of coloured shapes, and scikit-learn's digits."""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_dl.datasets._blocks import generate

#: The pattern of each class, in label order.
SHAPES = ("disk", "square", "triangle", "hstripes", "vstripes", "dstripes", "checker",
          "plus", "ring", "frame", "xcross", "diamond")

SCHEMA = "id long, image array<float>, label double"


def _mask(shape: str, x: np.ndarray, y: np.ndarray, r: float, size: int,
          rng: np.random.Generator) -> np.ndarray:
    """Soft coverage in [0, 1] of one shape centred at the origin of ``(x, y)``, radius ``r``."""
    def inside(d: np.ndarray, edge: float) -> np.ndarray:  # anti-aliased "d <= edge"
        return np.clip((edge - d) * size + 0.5, 0.0, 1.0)

    box = np.maximum(abs(x), abs(y))
    width = r * rng.uniform(0.3, 0.45)  # bar and outline thickness
    period = r * rng.uniform(0.55, 0.8)  # stripe period
    if shape == "disk":
        return inside(np.hypot(x, y), r)
    if shape == "square":
        return inside(box, r * 0.85)
    if shape == "triangle":  # pointing up; image rows grow downwards
        return inside(np.maximum(y, np.maximum(-y - 2 * x, -y + 2 * x) / 2 - 0.1 * r), r * 0.8)
    if shape in ("hstripes", "vstripes", "dstripes"):
        u = {"hstripes": y, "vstripes": x, "dstripes": (x + y) / np.sqrt(2)}[shape]
        return inside(box, r) * (np.sin(2 * np.pi * u / period) > 0)
    if shape == "checker":
        return inside(box, r) * ((np.sin(2 * np.pi * x / period) > 0)
                                 ^ (np.sin(2 * np.pi * y / period) > 0))
    if shape == "plus":
        return np.maximum(inside(abs(x), width / 2) * inside(abs(y), r),
                          inside(abs(y), width / 2) * inside(abs(x), r))
    if shape == "ring":
        return inside(abs(np.hypot(x, y) - r * 0.8), width / 2)
    if shape == "frame":
        return inside(abs(box - r * 0.8), width / 2)
    if shape == "xcross":
        u, v = (x + y) / np.sqrt(2), (x - y) / np.sqrt(2)
        return np.maximum(inside(abs(u), width / 2) * inside(abs(v), r),
                          inside(abs(v), width / 2) * inside(abs(u), r))
    return inside(abs(x) + abs(y), r)  # diamond


def _colour(rng: np.random.Generator, hue: float, value: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.3, 1.0), value))


def _image(rng: np.random.Generator, label: int, classes: int, size: int, channels: int,
           noise: float) -> np.ndarray:
    """One (C, H, W) image of class ``label``: shape, colours, clutter, noise."""
    grid = (np.arange(size) + 0.5) / size
    y, x = np.meshgrid(grid, grid, indexing="ij")
    r = rng.uniform(0.18, 0.32)
    cx, cy = rng.uniform(r, 1 - r, size=2)
    angle = rng.uniform(-0.3, 0.3)  # a small rotation; orientation still tells classes apart
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    mask = _mask(SHAPES[label], c * dx + s * dy, -s * dx + c * dy, r, size, rng)
    # Colour says little: a class leans to its own hue only 40% of the time.
    hue = label / classes + rng.uniform(-0.1, 0.1) if rng.random() < 0.4 else rng.random()
    fg_value, bg_value = rng.uniform(0.55, 1.0), rng.uniform(0.05, 0.45)
    if rng.random() < 0.5:  # dark shapes on a light ground as often as the reverse
        fg_value, bg_value = 1.05 - fg_value, 1.05 - bg_value
    fg = _colour(rng, hue, fg_value)
    bg = _colour(rng, rng.random(), bg_value)
    slope = rng.normal(0.0, 0.15, size=2)  # uneven lighting
    light = slope[0] * (x - 0.5) + slope[1] * (y - 0.5)
    img = bg[:, None, None] + light[None] + (fg - bg)[:, None, None] * mask[None]
    if rng.random() < 0.4:  # clutter: a small blob of any colour somewhere
        bx, by = rng.random(2)
        blob = np.clip((0.06 - np.hypot(x - bx, y - by)) * size + 0.5, 0.0, 1.0)
        img += (_colour(rng, rng.random(), rng.random()) - bg)[:, None, None] * blob[None] * 0.8
    if channels == 1:
        img = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None]
    img += rng.normal(0.0, noise, size=img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32).ravel()


def _block(rng: np.random.Generator, block: dict[str, Any], classes: int, size: int,
           channels: int, noise: float) -> pd.DataFrame:
    n = block["rows"]
    labels = rng.integers(0, classes, size=n)
    images = [_image(rng, int(k), classes, size, channels, noise) for k in labels]
    return pd.DataFrame({"id": block["start"] + np.arange(n), "image": images,
                         "label": labels.astype(float)})


def images(spark: SparkSession, rows: int = 10_000, *, classes: int = 10, size: int = 32,
           channels: int = 3, noise: float = 0.06, seed: int = 0, block_rows: int = 1_000,
           partitions: int | None = None) -> DataFrame:
    """CIFAR-10-shaped images of coloured shapes, one class per shape, made on the executors.

    Class ``k`` draws ``SHAPES[k]`` (disk, square, triangle, horizontal, vertical and
    diagonal stripes, checkerboard, plus, ring, frame, x-cross, diamond) at a random
    position and scale, slightly rotated, on a background with uneven lighting, a small
    clutter blob in 40% of images and Gaussian pixel noise. Colours are random (a class
    leans to its own hue 40% of the time) and the shape is light on dark or dark on light
    equally often, so the class lies in the shape: a small CNN learns it far better than
    a model of single pixels. Labels are uniform over the classes.

    Returns columns ``id`` (long), ``image`` (array<float> of ``channels * size * size``
    values in [0, 1], in (C, H, W) order; ``channels`` 1 is grey) and ``label`` (double,
    ``0 .. classes - 1``).

    Examples
    --------
    >>> df = images(spark, 2_000, size=16, seed=1)  # doctest: +SKIP
    >>> len(df.first().image)  # doctest: +SKIP
    768
    """
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"The 'classes' argument of images must be an int in [2, "
                         f"{len(SHAPES)}]. Got {classes!r} instead.")
    if channels not in (1, 3):
        raise ValueError(f"The 'channels' argument of images must be 1 or 3. Got "
                         f"{channels!r} instead.")
    if size < 8:
        raise ValueError(f"The 'size' argument of images must be an int >= 8. Got "
                         f"{size!r} instead.")
    blocks = [{"start": s, "rows": min(block_rows, rows - s)} for s in range(0, rows, block_rows)]

    def make(rng: np.random.Generator, block: dict[str, Any]) -> pd.DataFrame:
        return _block(rng, block, classes, size, channels, noise)

    return generate(spark, blocks, make, SCHEMA, seed, partitions)


def digits(spark: SparkSession, *, seed: int = 0, partitions: int | None = None) -> DataFrame:
    """scikit-learn's bundled handwritten digits (1,797 images of 8x8) in the images schema.

    The data set is small, so it is read on the driver and handed to
    ``spark.createDataFrame``; rows are shuffled by ``seed`` and ``id`` numbers them in
    that order.

    Returns columns ``id`` (long), ``image`` (array<float> of 1 * 8 * 8 values in [0, 1],
    in (C, H, W) order) and ``label`` (double, 0-9).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    pixels = (data.data[order] / 16.0).astype(np.float32)
    rows = [(i, pixels[i].tolist(), float(data.target[j])) for i, j in enumerate(order)]
    df = spark.createDataFrame(rows, SCHEMA)
    return df.repartition(partitions) if partitions else df
