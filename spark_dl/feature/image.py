"""Images into normalized ``(C, H, W)`` float tensors, for CNN training and scoring.

Driver side: :class:`ImageTensorizer` validates its Params, detects the input kind from the
column's type (Spark image struct, encoded file bytes, or raw pixel arrays) and declares the
output column. Executor side: :func:`spark_dl.feature._images.tensorize` decodes, resizes
and normalizes one Arrow batch with numpy and Pillow, given plain values only.
"""

from __future__ import annotations

import math
from typing import Callable

import pandas as pd
from pyspark.ml import Transformer
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DataType,
    FloatType,
    IntegerType,
    NumericType,
    StringType,
    StructField,
    StructType,
)

from spark_dl.feature._images import OWNER, TensorSpec, tensorize
from spark_dl.param_table import (
    HANDLE_INVALID,
    Check,
    ParamSpec,
    TableParams,
    declare,
    one_of,
    stage,
    validate_params,
)
from spark_dl.persistence import Persistable
from spark_dl.validation import check_column_exists, require

#: Fields (and types) that make a struct column a Spark image (``ImageSchema.columnSchema``).
IMAGE_FIELDS: dict[str, type[DataType]] = {
    "height": IntegerType, "width": IntegerType, "nChannels": IntegerType, "data": BinaryType,
}
LAYOUTS = ("HWC", "CHW")
CHANNEL_ORDERS = ("RGB", "BGR")
#: Column of Spark's binaryFile source naming each file; used in error messages when present.
PATH_COL = "path"


@declare(
    ParamSpec("inputCol", default="image"),
    ParamSpec("outputCol", default="features"),
    ParamSpec(
        "size", "Height and width [H, W] of every output image (ints >= 1); images of another "
        "size are resized with Pillow's bilinear filter, ignoring the aspect ratio.",
        kind="ints", default=[32, 32],
        check=Check(lambda v: len(v) == 2 and min(v) >= 1,
                    "a list of two ints >= 1, [height, width]")),
    ParamSpec(
        "channels", "Channels C of the output: 1 (gray, ITU-R 601-2 luma of RGB input) or 3 "
        "(colour; gray input is copied into all three).", kind="int", default=3,
        check=Check(lambda v: v in (1, 3), "1 (gray) or 3 (colour)")),
    ParamSpec(
        "channelOrder", "Order of the 3 output channels: 'RGB' or 'BGR' (ignored when "
        "channels is 1).", default="RGB", check=one_of(CHANNEL_ORDERS)),
    ParamSpec(
        "scale", "Every pixel value is multiplied by this (> 0) before mean and std: 1/255 "
        "puts 8-bit pixels in [0, 1]; use 1.0 for raw arrays already in [0, 1].",
        kind="float", default=1 / 255,
        check=Check(lambda v: math.isfinite(v) and v > 0, "a finite float > 0")),
    ParamSpec(
        "mean", "Subtracted from each scaled channel: one value for all channels or one per "
        "output channel, in channelOrder.", kind="floats", default=[0.0]),
    ParamSpec(
        "std", "Divides each channel after the mean is subtracted (> 0): one value for all "
        "channels or one per output channel, in channelOrder.", kind="floats", default=[1.0]),
    ParamSpec(
        "inputShape", "Shape of the raw pixel arrays in inputCol, in inputLayout order "
        "([H, W, C] or [C, H, W], C = 1, 3 (RGB) or 4 (RGBA, alpha dropped)). Required for "
        "array input, unused otherwise.", kind="ints"),
    ParamSpec(
        "inputLayout", "Layout of the raw pixel arrays: 'HWC' (row-major pixels, channels "
        "interleaved) or 'CHW' (one plane per channel).", default="HWC", check=one_of(LAYOUTS)),
    ParamSpec(
        "handleInvalid", "What to do with a null input, a file neither Spark's image source "
        "nor Pillow can decode, or a raw array that is not H * W * C finite values: 'error' "
        "fails the job naming the file, 'skip' drops the row, 'keep' outputs null.",
        default="error", check=one_of(HANDLE_INVALID)),
)
class _ImageTensorizerParams(TableParams, HasInputCol, HasOutputCol):
    """Params of :class:`ImageTensorizer`."""


@stage()
class ImageTensorizer(Transformer, _ImageTensorizerParams, Persistable):
    """Turns images into normalized float tensors, flattened in (C, H, W) order.

    ``inputCol`` may hold any of three kinds, told apart by its type on the driver:

    * a Spark image struct (``spark.read.format("image")``, column ``image``): B, G, R(, A)
      bytes, row-major; a file the source could not decode (``dropInvalid`` false) is invalid;
    * binary file content (``spark.read.format("binaryFile")``, column ``content``), decoded
      by Pillow (PNG, JPEG, and every format Pillow opens; first frame, no EXIF rotation);
      the source's ``path`` column, when present, names the file in error messages;
    * an array of numbers holding raw pixels, ``inputShape`` values in ``inputLayout``
      (3 channels are read as R, G, B).

    Each image is converted to ``channels`` (gray = ITU-R 601-2 luma; alpha is dropped, not
    composited), resized to ``size`` with Pillow's bilinear filter on float pixels (the
    aspect ratio is not kept), put in ``channelOrder``, and normalized per channel to
    ``(pixel * scale - mean) / std``. ``outputCol`` (``array<float>``, C * H * W values) is
    added to the input columns; :attr:`outputShape` is (C, H, W), to give to the network.

    ``handleInvalid``: a null input, undecodable bytes (corrupt, truncated, not an image)
    and a raw array of the wrong length or with null/NaN/infinite values are invalid.
    ``'error'`` (default) fails the job with a message naming the file when known,
    ``'skip'`` drops the row, ``'keep'`` keeps it with a null ``outputCol``.

    Decoding runs once per row in Arrow batches of ``spark.sql.execution.arrow.
    maxRecordsPerBatch`` rows; lower that conf for large images (a batch's tensors are held
    in memory at once).

    Examples
    --------
    >>> images = spark.read.format("image").load("photos/")
    >>> tensorizer = ImageTensorizer(size=[32, 32], mean=[0.485, 0.456, 0.406],
    ...                              std=[0.229, 0.224, 0.225])
    >>> tensorizer.outputShape
    (3, 32, 32)
    >>> tensorizer.transform(images).select("image.origin", "features").printSchema()
    root
     |-- origin: string (nullable = true)
     |-- features: array (nullable = true)
     |    |-- element: float (containsNull = true)
    """

    @property
    def outputShape(self) -> tuple[int, int, int]:
        """(C, H, W) of each output tensor: ``(channels, *size)``, e.g. a CNN's input shape."""
        self._check_ranges()
        h, w = self.getSize()
        return (self.getChannels(), h, w)

    # ------------------------------------------------------------------ driver: validation
    def _resolve(self, schema: StructType) -> TensorSpec:
        """Validate every Param against ``schema`` (no Spark job) into plain values."""
        self._check_ranges()
        col, out = self.getInputCol(), self.getOutputCol()
        kind = input_kind(check_column_exists(schema, col, "inputCol", OWNER), col)
        if out in schema.names:
            raise ValueError(f"The 'outputCol' column {out!r} of {OWNER} already exists in the "
                             f"DataFrame. Choose another outputCol. Columns: {schema.names}.")
        shape = self.getInputShape()
        require(kind != "array" or shape is not None, OWNER, "inputShape",
                f"set for array input (column {col!r}: [H, W, C] or [C, H, W] per "
                "inputLayout)", shape)
        layout, c = self.getInputLayout(), self.getChannels()
        hwc: tuple[int, int, int] | None = None
        if shape is not None:
            first, second, third = shape
            hwc = (second, third, first) if layout == "CHW" else (first, second, third)
        (h, w), mean, std = self.getSize(), self.getMean(), self.getStd()
        return TensorSpec(
            kind=kind, size=(h, w), channels=c, bgr=self.getChannelOrder() == "BGR",
            scale=float(self.getScale()),
            mean=tuple(mean * c if len(mean) == 1 else mean),
            std=tuple(std * c if len(std) == 1 else std),
            input_shape=hwc, channels_first=layout == "CHW",
            on_invalid=self.getHandleInvalid(),
        )

    def _check_ranges(self) -> None:
        validate_params(self, OWNER)
        c, layout = self.getChannels(), self.getInputLayout()
        for name, values in (("mean", self.getMean()), ("std", self.getStd())):
            require(len(values) in (1, c) and all(math.isfinite(v) for v in values), OWNER,
                    name, f"a list of 1 or channels ({c}) finite floats", values)
        std = self.getStd()
        require(min(std) > 0, OWNER, "std", "a list of floats > 0", std)
        shape = self.getInputShape()
        if shape is not None:
            channels = (shape[0] if layout == "CHW" else shape[-1]) if len(shape) == 3 else 0
            require(min(shape, default=0) >= 1 and channels in (1, 3, 4), OWNER,
                    "inputShape", f"three ints >= 1 in inputLayout {layout!r} order with 1, 3 "
                    "or 4 channels", shape)

    def transformSchema(self, schema: StructType) -> StructType:
        """The output schema, from the input schema alone (validates the Params)."""
        self._resolve(schema)
        return _output_schema(schema, self.getOutputCol())

    # ------------------------------------------------------------------ driver: plan
    def _transform(self, dataset: DataFrame) -> DataFrame:
        spec = self._resolve(dataset.schema)
        out = self.getOutputCol()
        batch = _udf_input(dataset.schema, self.getInputCol(), spec.kind)
        result = dataset.select("*", _tensorize_udf(spec)(batch).alias(out))
        return result.where(F.col(out).isNotNull()) if spec.on_invalid == "skip" else result


def input_kind(dt: DataType, column: str) -> str:
    """'image', 'binary' or 'array' from a column's type, or a TypeError naming the three."""
    if isinstance(dt, StructType) and all(
            name in dt.names and isinstance(dt[name].dataType, kind)
            for name, kind in IMAGE_FIELDS.items()):
        return "image"
    if isinstance(dt, BinaryType):
        return "binary"
    if isinstance(dt, ArrayType) and isinstance(dt.elementType, NumericType):
        return "array"
    raise TypeError(
        f"The 'inputCol' column {column!r} of {OWNER} must be a Spark image struct "
        "(spark.read.format('image'): height, width, nChannels, data), binary file content "
        "(spark.read.format('binaryFile'): content) or an array of numbers holding raw pixels "
        f"(with inputShape). Got {dt.simpleString()}."
    )


def _output_schema(schema: StructType, out: str) -> StructType:
    return StructType([*schema.fields, StructField(out, ArrayType(FloatType()), True)])


def _udf_input(schema: StructType, col: str, kind: str) -> Column:
    """The struct the UDF receives: ``data``, ``origin`` and, for images, the image fields."""
    if kind == "image":
        return F.col(col)
    origin = F.lit(None).cast(StringType())
    has_path = PATH_COL in schema.names and isinstance(schema[PATH_COL].dataType, StringType)
    if kind == "binary" and has_path and col != PATH_COL:
        origin = F.col(PATH_COL)
    return F.struct(F.col(col).alias("data"), origin.alias("origin"))


def _tensorize_udf(spec: TensorSpec) -> Callable[[Column], Column]:
    """``tensorize`` bound to ``spec``, as a pandas UDF declared ``array<float>``."""

    def run(batch: pd.DataFrame) -> pd.Series:
        return tensorize(batch, spec)

    # Non-deterministic only for the optimizer: a filter on the output (handleInvalid='skip',
    # or a later stage's null check) is otherwise pushed below the projection with the UDF
    # copied into it, and every image would be decoded twice.
    udf = F.pandas_udf(run, ArrayType(FloatType()))  # type: ignore[call-overload]
    return udf.asNondeterministic()
