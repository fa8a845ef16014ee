"""Input pipelines (tf.data): single images, image folders, TFDS and synthetic data.

`load(source, batch_size=...)` returns `(train_ds, val_ds, info)` for a source:

* `"synthetic"`: learnable ImageNet-shaped images generated on the fly;
* a folder `PATH` with `PATH/train/<class>/` and `PATH/val/<class>/`;
* `"tfds:NAME[/CONFIG]"`: a TensorFlow Datasets builder, e.g. `tfds:imagenet2012`.

`eval_dataset` gives one split in a fixed order for scoring, `load_image` one
image file. The modules, one job each:

* `transforms`: decode, resize, crops, augmentation and PCA colour noise (paper §2, §4.1);
* `limits`: the limits on one image, checked from its header before decoding;
* `decode_cache`: which folder files cannot be used, found once and cached;
* `info`: `DataInfo`, assembled in one place for every source;
* `synthetic`, `folders`, `tfds`: the three sources;
* `loader`: `load`, `eval_dataset`, `load_image`;
* `mean_image`: `compute_mean_image`, the training set's mean image in one streaming pass.
"""

from .decode_cache import find_unusable
from .info import (
    SKIP_DANGLING,
    SKIP_LIMITS,
    SKIP_LOOP,
    SKIP_NON_UTF8,
    SKIP_NOT_JPEG_PNG,
    SKIP_UNDECODABLE,
    SKIP_UNREADABLE,
    DataInfo,
)
from .limits import (
    LIMITS_TEXT,
    MAX_ASPECT_RATIO,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    decode_checked,
    header_shape,
    read_image,
    within_limits,
)
from .loader import eval_dataset, load, load_image
from .mean_image import compute_mean_image
from .transforms import (
    PCA_ALPHA_STD,
    PCA_EIGVAL,
    PCA_EIGVEC,
    center_crop,
    decode_image,
    eval_transform,
    pca_color_noise,
    resize_short_side,
    train_transform,
)

__all__ = [
    "LIMITS_TEXT",
    "MAX_ASPECT_RATIO",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "PCA_ALPHA_STD",
    "PCA_EIGVAL",
    "PCA_EIGVEC",
    "SKIP_DANGLING",
    "SKIP_LIMITS",
    "SKIP_LOOP",
    "SKIP_NON_UTF8",
    "SKIP_NOT_JPEG_PNG",
    "SKIP_UNDECODABLE",
    "SKIP_UNREADABLE",
    "DataInfo",
    "center_crop",
    "compute_mean_image",
    "decode_checked",
    "decode_image",
    "eval_dataset",
    "eval_transform",
    "find_unusable",
    "header_shape",
    "load",
    "load_image",
    "pca_color_noise",
    "read_image",
    "resize_short_side",
    "train_transform",
    "within_limits",
]
