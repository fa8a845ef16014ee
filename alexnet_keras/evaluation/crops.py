"""The paper's ten test patches (§4.1): the four corners and the centre of the
256x256 image, then the horizontal reflection of each."""

import numpy as np

CROP_NAMES = (
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
    "centre",
    "top-left flipped",
    "top-right flipped",
    "bottom-left flipped",
    "bottom-right flipped",
    "centre flipped",
)


def crop_offsets(height, width, size):
    """(top, left) of the 5 paper patches: 4 corners then the centre (offsets floored).

    Example:
    >>> crop_offsets(256, 256, 227)
    [(0, 0), (0, 29), (29, 0), (29, 29), (14, 14)]
    """
    if size > height or size > width:
        raise ValueError(f"crop {size} is larger than the {height}x{width} image")
    bottom, right = height - size, width - size
    return [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]


def ten_crop(images, size):
    """The paper's ten test patches of each image (§4.1).

    Args:
        images: `(B, H, W, C)` or `(H, W, C)`, e.g. the 256x256 evaluation images.
        size: patch size (227 for the 2012 net, 224 for owt).

    Returns:
        `(B, 10, size, size, C)` (or `(10, size, size, C)`), in `CROP_NAMES` order:
        top-left, top-right, bottom-left, bottom-right, centre, then each of those
        mirrored left-right.

    Example:
    >>> ten_crop(np.zeros((2, 256, 256, 3)), 227).shape
    (2, 10, 227, 227, 3)
    """
    images = np.asarray(images)
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"images must be (B, H, W, C) or (H, W, C), got {images.shape}")
    crops = [
        images[:, t : t + size, left : left + size, :]
        for t, left in crop_offsets(images.shape[1], images.shape[2], size)
    ]
    crops += [c[:, :, ::-1, :] for c in crops]
    out = np.stack(crops, axis=1)
    return out[0] if single else out
