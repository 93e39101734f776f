"""ImageTensorizer: image files, binary files and raw arrays into normalized (C, H, W) tensors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql.types import ArrayType, FloatType

from spark_dl.feature.image import ImageTensorizer

SOLID = (10, 120, 250)  # R, G, B of solid.png (6 x 4 pixels)
JPEG_COLOUR = (200, 100, 50)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Four tiny images of different sizes and kinds, and one corrupt file."""
    d = tmp_path_factory.mktemp("images")
    Image.fromarray(np.full((4, 6, 3), SOLID, np.uint8)).save(d / "solid.png")
    ramp = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3) * 2
    Image.fromarray(ramp).save(d / "ramp.png")
    Image.fromarray(np.array([[0, 60], [120, 240]], np.uint8)).save(d / "gray.png")
    Image.fromarray(np.full((8, 8, 3), JPEG_COLOUR, np.uint8)).save(d / "photo.jpg", quality=95)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    return str(d)


@pytest.fixture(scope="module")
def images(spark, image_dir):
    return spark.read.format("image").load(image_dir).cache()


@pytest.fixture(scope="module")
def files(spark, image_dir):
    return spark.read.format("binaryFile").load(image_dir).cache()


def _by_file(df, name_col, out="features"):
    """{file name: tensor as float32 numpy, or None} from a transformed DataFrame."""
    return {os.path.basename(r[0]): None if r[1] is None else np.asarray(r[1], np.float32)
            for r in df.select(name_col, out).collect()}


def _valid(df):
    return df.where("image.nChannels > 0")


# ------------------------------------------------------------------ exact values
def test_solid_png_gives_exact_normalized_planes(images):
    t = ImageTensorizer(size=[3, 5], mean=[0.5, 0.5, 0.5], std=[0.25])
    out = t.transform(_valid(images))
    assert out.schema == t.transformSchema(images.schema)
    assert out.schema["features"].dataType == ArrayType(FloatType())
    got = _by_file(out, "image.origin")["solid.png"]
    expected = np.concatenate([np.full(15, (np.float32(c) / np.float32(255) - np.float32(0.5))
                                       / np.float32(0.25), np.float32) for c in SOLID])
    assert t.outputShape == (3, 3, 5) and got.shape == (45,)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_image_source_and_binary_files_give_the_same_tensors(images, files):
    kw = dict(size=[4, 4], mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    from_images = _by_file(ImageTensorizer(**kw).transform(_valid(images)), "image.origin")
    from_files = _by_file(ImageTensorizer(inputCol="content", **kw)
                          .transform(files.where("path NOT LIKE '%corrupt%'")), "path")
    assert sorted(from_images) == sorted(from_files) == [
        "gray.png", "photo.jpg", "ramp.png", "solid.png"]
    for name in ("gray.png", "ramp.png", "solid.png"):  # lossless: BGR bytes = Pillow's RGB
        np.testing.assert_array_equal(from_images[name], from_files[name])
    # JPEG decoders (Java ImageIO, libjpeg) may differ by a level or two.
    np.testing.assert_allclose(from_images["photo.jpg"], from_files["photo.jpg"], atol=0.04)
    red = from_files["photo.jpg"][:16]
    np.testing.assert_allclose(red, (JPEG_COLOUR[0] / 255 - 0.485) / 0.229, atol=0.04)


def test_grayscale_conversion_and_gray_to_colour(images):
    gray = _by_file(ImageTensorizer(size=[2, 2], channels=1, scale=1.0)
                    .transform(_valid(images)), "image.origin")
    r, g, b = SOLID
    np.testing.assert_allclose(gray["solid.png"], [0.299 * r + 0.587 * g + 0.114 * b] * 4,
                               rtol=1e-6)
    np.testing.assert_array_equal(gray["gray.png"], [0, 60, 120, 240])
    colour = _by_file(ImageTensorizer(size=[2, 2], scale=1.0).transform(_valid(images)),
                      "image.origin")
    np.testing.assert_array_equal(colour["gray.png"], [0, 60, 120, 240] * 3)


def test_bgr_channel_order_and_means_in_that_order(files):
    kw = dict(inputCol="content", size=[2, 2], scale=1.0, std=[2.0])
    ok = files.where("path LIKE '%solid.png'")
    rgb = _by_file(ImageTensorizer(**kw).transform(ok), "path")["solid.png"]
    bgr = _by_file(ImageTensorizer(channelOrder="BGR", mean=[1.0, 2.0, 3.0], **kw)
                   .transform(ok), "path")["solid.png"]
    np.testing.assert_array_equal(rgb, np.repeat(np.array(SOLID, np.float32) / 2, 4))
    b, g, r = (np.array(SOLID[::-1], np.float32) - [1.0, 2.0, 3.0]) / 2
    np.testing.assert_array_equal(bgr, np.repeat([b, g, r], 4))


# ------------------------------------------------------------------ handleInvalid
@pytest.mark.parametrize("source", ["image", "binaryFile"])
def test_corrupt_file_follows_handle_invalid(images, files, source):
    df, col, name = (images, "image", "image.origin") if source == "image" else \
        (files, "content", "path")
    kw = dict(inputCol=col, size=[2, 2])
    with pytest.raises(Exception, match=r"ImageTensorizer cannot turn the image at "
                                        r"'file:[^']*corrupt\.png' into a tensor"):
        ImageTensorizer(**kw).transform(df).collect()
    skipped = _by_file(ImageTensorizer(handleInvalid="skip", **kw).transform(df), name)
    assert sorted(skipped) == ["gray.png", "photo.jpg", "ramp.png", "solid.png"]
    kept = _by_file(ImageTensorizer(handleInvalid="keep", **kw).transform(df), name)
    assert len(kept) == 5 and kept["corrupt.png"] is None
    assert all(v.shape == (12,) for k, v in kept.items() if k != "corrupt.png")


# ------------------------------------------------------------------ raw arrays
@pytest.fixture(scope="module")
def digits(spark):
    from sklearn.datasets import load_digits

    data = load_digits()
    rows = [(i, data.data[i].tolist()) for i in range(12)]
    return spark.createDataFrame(rows, "id int, pixels array<double>"), data.images[:12]


def test_digits_kept_8x8_are_scaled_exactly(digits):
    df, imgs = digits
    t = ImageTensorizer(inputCol="pixels", inputShape=[8, 8, 1], size=[8, 8], channels=1,
                        scale=1 / 16)
    out = {r.id: r.features for r in t.transform(df).collect()}
    for i, img in enumerate(imgs):
        np.testing.assert_allclose(out[i], (img / 16).ravel(), rtol=1e-6, atol=1e-7)


def test_digits_resized_to_32x32_rgb(digits):
    df, imgs = digits
    t = ImageTensorizer(inputCol="pixels", inputShape=[1, 8, 8], inputLayout="CHW",
                        size=[32, 32], scale=1 / 16, mean=[0.5], std=[0.5])
    out = {r.id: np.asarray(r.features) for r in t.transform(df).collect()}
    assert t.outputShape == (3, 32, 32) and out[0].shape == (3 * 32 * 32,)
    planes = out[3].reshape(3, 32, 32)
    np.testing.assert_array_equal(planes[0], planes[2])  # gray copied into R, G, B
    big = np.asarray(Image.fromarray(imgs[3].astype(np.float32))
                     .resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(planes[1], (big / 16 - 0.5) / 0.5, rtol=1e-5, atol=1e-5)
    assert -1.0 <= min(v.min() for v in out.values()) and max(v.max() for v in out.values()) <= 1


@pytest.fixture(scope="module")
def ragged(spark):
    rows = [(0, [0, 1, 2, 3]), (1, [0, 1, 2]), (2, None), (3, [4, 5, 6, 7])]
    return spark.createDataFrame(rows, "id int, px array<int>")


def test_wrong_length_raw_arrays_follow_handle_invalid(ragged):
    kw = dict(inputCol="px", inputShape=[2, 2, 1], size=[2, 2], channels=1, scale=1.0)
    with pytest.raises(Exception, match=r"cannot turn a raw array into a tensor: the array "
                                        r"holds 3 values where inputShape \[2, 2, 1\] needs 4"):
        ImageTensorizer(**kw).transform(ragged.where("id < 2")).collect()
    skip = ImageTensorizer(handleInvalid="skip", **kw).transform(ragged)
    assert sorted((r.id, r.features) for r in skip.collect()) == [
        (0, [0.0, 1.0, 2.0, 3.0]), (3, [4.0, 5.0, 6.0, 7.0])]
    keep = ImageTensorizer(handleInvalid="keep", **kw).transform(ragged)
    assert sorted((r.id, r.features) for r in keep.collect()) == [
        (0, [0.0, 1.0, 2.0, 3.0]), (1, None), (2, None), (3, [4.0, 5.0, 6.0, 7.0])]


# ------------------------------------------------------------------ persistence
@pytest.mark.compat
def test_save_load_alone_and_in_a_pipeline_give_identical_output(images, tmp_path):
    t = ImageTensorizer(size=[5, 3], channels=1, channelOrder="BGR", mean=[0.2], std=[0.7],
                        scale=0.5, handleInvalid="keep", outputCol="x")
    expected = _by_file(t.transform(images), "image.origin", "x")
    t.save(str(tmp_path / "stage"))
    loaded = ImageTensorizer.load(str(tmp_path / "stage"))
    assert loaded.extractParamMap() == {loaded.getParam(p.name): v
                                        for p, v in t.extractParamMap().items()}
    model = Pipeline(stages=[t]).fit(images)
    model.save(str(tmp_path / "pipeline"))
    reloaded = PipelineModel.load(str(tmp_path / "pipeline"))
    for stage in (loaded, reloaded):
        got = _by_file(stage.transform(images), "image.origin", "x")
        assert got.keys() == expected.keys() and got["corrupt.png"] is None
        for name, tensor in expected.items():
            if tensor is not None:
                np.testing.assert_array_equal(got[name], tensor)


# ------------------------------------------------------------------ driver-side errors
def test_defaults_and_output_shape():
    t = ImageTensorizer()
    assert (t.getInputCol(), t.getOutputCol(), t.getSize(), t.getChannels()) == (
        "image", "features", [32, 32], 3)
    assert (t.getScale(), t.getMean(), t.getStd(), t.getHandleInvalid()) == (
        1 / 255, [0.0], [1.0], "error")
    assert t.getInputShape() is None and t.outputShape == (3, 32, 32)
    assert ImageTensorizer(size=(28, 20), channels=1).outputShape == (1, 28, 20)
    assert all(p.doc.strip() for p in t.params)
    with pytest.raises(TypeError):
        ImageTensorizer("image")  # type: ignore[misc]
    clone = t.setParams(size=[8, 8], channels=1).copy({t.scale: 0.5})
    assert (clone.outputShape, clone.getScale(), t.getScale()) == ((1, 8, 8), 0.5, 1 / 255)
    with pytest.raises(ValueError, match="'size' parameter"):
        ImageTensorizer(size=[8, -1]).outputShape


@pytest.mark.parametrize("kw, error, message", [
    (dict(inputCol="nope"), ValueError, "The 'inputCol' column 'nope' of ImageTensorizer is "
                                        "not in the DataFrame"),
    (dict(inputCol="name"), TypeError, "must be a Spark image struct .* Got string"),
    (dict(inputCol="px"), ValueError, "The 'inputShape' parameter of ImageTensorizer must be "
                                      "set for array input .* Got None instead"),
    (dict(inputCol="px", inputShape=[2, 2]), ValueError, "'inputShape' parameter .* three ints"),
    (dict(inputCol="px", inputShape=[2, 2, 2]), ValueError, "with 1, 3 or 4 channels"),
    (dict(size=[0, 32]), ValueError, r"The 'size' parameter of ImageTensorizer must be a list "
                                     r"of two ints >= 1, \[height, width\]. Got \[0, 32\]"),
    (dict(size=[32]), ValueError, "'size' parameter"),
    (dict(channels=4), ValueError, "'channels' parameter .* 1 \\(gray\\) or 3"),
    (dict(mean=[0.1, 0.2]), ValueError, "'mean' parameter .* 1 or channels \\(3\\)"),
    (dict(std=[1.0, 0.0, 1.0]), ValueError, "'std' parameter .* floats > 0"),
    (dict(std=[float("nan")]), ValueError, "'std' parameter .* finite"),
    (dict(scale=0.0), ValueError, "'scale' parameter .* > 0. Got 0.0"),
    (dict(channelOrder="rgb"), ValueError, "'channelOrder' parameter .* \\['RGB', 'BGR'\\]"),
    (dict(inputLayout="NHWC"), ValueError, "'inputLayout' parameter"),
    (dict(handleInvalid="drop"), ValueError, "'handleInvalid' parameter"),
    (dict(outputCol="name"), ValueError, "The 'outputCol' column 'name' of ImageTensorizer "
                                         "already exists"),
])
def test_bad_params_and_columns_fail_on_the_driver(spark, kw, error, message):
    df = spark.createDataFrame([], "name string, px array<float>, image binary")
    t = ImageTensorizer(**{"inputCol": "image", **kw})
    with pytest.raises(error, match=message):
        t.transform(df)
    with pytest.raises(error, match=message):
        t.transformSchema(df.schema)
