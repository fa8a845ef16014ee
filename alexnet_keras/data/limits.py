"""Limits on one input image, checked from its size and header before it is decoded.

Every file is checked against these before it is read whole or decoded, so that
no single file can cost more than a bounded amount of memory: a decompression
bomb or a 6000x1 strip is skipped and counted by the data pipelines (or, for one
image, refused in one line) without costing gigabytes.
"""

import io
import os
import warnings

import numpy as np
import tensorflow as tf

from ..errors import UserError
from .transforms import decode_image

MAX_IMAGE_BYTES = 256 * 2**20  # the file is read whole before decoding
# Decoded pixels: PIL's decompression-bomb threshold (Image.MAX_IMAGE_PIXELS); 268 MB as uint8 RGB.
MAX_IMAGE_PIXELS = 89_478_485
# Long side / short side. The short side is resized to 256 first, so a resized image
# holds at most 256 x 12800 float RGB pixels (39 MB); a 6000x1 strip would take 4.7 GB.
MAX_ASPECT_RATIO = 50
LIMITS_TEXT = (
    f"at most {MAX_IMAGE_PIXELS:,} pixels, an aspect ratio of {MAX_ASPECT_RATIO}:1 and {MAX_IMAGE_BYTES >> 20} MiB"
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"


def within_limits(height, width):
    """True if a `height` x `width` image is within `MAX_IMAGE_PIXELS` and `MAX_ASPECT_RATIO`.

    One definition for Python ints (single images) and int64 tensors (tf.data pipelines).

    Example:
    >>> within_limits(256, 256), within_limits(6000, 1)
    (True, False)
    """
    return (
        (height >= 1)
        & (width >= 1)
        & (height * width <= MAX_IMAGE_PIXELS)
        & (height <= MAX_ASPECT_RATIO * width)
        & (width <= MAX_ASPECT_RATIO * height)
    )


def _is_png(contents):
    return tf.equal(tf.strings.substr(contents, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)


def _png_shape(contents):
    """(height, width) from a PNG's IHDR chunk, which must come first: big-endian uint32s at bytes 16 and 20."""
    is_ihdr = tf.equal(tf.strings.substr(contents, 12, 4), b"IHDR")
    with tf.control_dependencies([tf.debugging.Assert(is_ihdr, ["PNG without a leading IHDR chunk"])]):
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, 16, 8), tf.uint8), tf.int64)
    width = ((raw[0] * 256 + raw[1]) * 256 + raw[2]) * 256 + raw[3]
    height = ((raw[4] * 256 + raw[5]) * 256 + raw[6]) * 256 + raw[7]
    return height, width


def header_shape(contents):
    """(height, width, supported) of encoded image bytes, read from the header without decoding.

    `supported` is False (and the shape -1) for anything but JPEG and PNG, the
    formats the data pipelines take. A corrupt header raises `InvalidArgumentError`.
    """

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(contents), tf.int64)
        return shape[0], shape[1], tf.constant(True)

    def png():
        height, width = _png_shape(contents)
        return height, width, tf.constant(True)

    def other():
        return tf.constant(-1, tf.int64), tf.constant(-1, tf.int64), tf.constant(False)

    return tf.cond(tf.io.is_jpeg(contents), jpeg, lambda: tf.cond(_is_png(contents), png, other))


def decode_checked(contents):
    """`decode_image` for JPEG or PNG bytes whose header is within the limits; raises otherwise.

    The check runs before the decoder, so a decompression bomb never allocates its pixels.
    """
    height, width, supported = header_shape(contents)
    ok = supported & within_limits(height, width)
    check = tf.debugging.Assert(ok, ["image not JPEG/PNG or beyond the limits:", height, width])
    with tf.control_dependencies([check]):
        return decode_image(tf.identity(contents))


def _limits_error(path, height, width):
    return UserError(
        f"image {path} is {width}x{height} pixels, beyond the limits ({LIMITS_TEXT}); "
        "it was not decoded: crop or resize it first"
    )


def _pil_first_frame(path, contents):
    """GIF and BMP through PIL, header checked first; only the first frame is decoded.

    (TF's GIF decoder reads every frame of an animation before returning the first.)
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits apply below
            image = Image.open(io.BytesIO(contents))
        if image.format not in ("GIF", "BMP"):
            raise UserError(f"not a decodable image (JPEG, PNG, GIF or BMP): {path}")
        width, height = image.size
        if not within_limits(height, width):
            raise _limits_error(path, height, width)
        return np.asarray(image.convert("RGB"))
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(f"image {path} declares over {2 * MAX_IMAGE_PIXELS:,} pixels; it was not decoded") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise UserError(f"not a decodable image: {path}") from None


def read_image(path):
    """Reads and decodes one image file to uint8 RGB, after checking it against the limits.

    Raises `UserError` naming the file if it cannot be read, is not an image or is
    beyond the limits (`MAX_IMAGE_BYTES`, `MAX_IMAGE_PIXELS`, `MAX_ASPECT_RATIO`).
    """
    try:
        size = os.stat(path).st_size
        if size > MAX_IMAGE_BYTES:
            raise UserError(f"image {path} is {size:,} bytes, over the {MAX_IMAGE_BYTES >> 20} MiB limit; not read")
        with open(path, "rb") as f:
            contents = f.read()
    except OSError as e:
        raise UserError(f"cannot read image {path}: {e.strerror}") from None
    if not (contents.startswith(_JPEG_SIGNATURE) or contents.startswith(PNG_SIGNATURE)):
        return _pil_first_frame(path, contents)
    try:
        height, width, _ = (int(v) for v in header_shape(contents))
    except tf.errors.OpError:
        raise UserError(f"not a decodable image: {path}") from None
    if not within_limits(height, width):
        raise _limits_error(path, height, width)
    try:
        return decode_image(contents)
    except tf.errors.OpError:
        raise UserError(f"not a decodable image: {path}") from None
