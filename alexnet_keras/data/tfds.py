"""TensorFlow Datasets sources: `"tfds:NAME[/CONFIG]"`, e.g. `tfds:imagenet2012`.

Nothing is downloaded: a dataset that is not prepared is prepared only from
files already on disk (`--tfds-manual-dir`, TFDS's download cache), with network
lookups refused, so an offline or slow machine gets its answer in seconds.
Images are decoded in our own parallel map (after shuffling) and checked
against the image limits like folder images.
"""

import contextlib
import logging
import os
import sys
import threading
import weakref

import tensorflow as tf

from ..errors import UserError
from .info import make_info
from .limits import decode_checked, header_shape, within_limits
from .transforms import pipeline

# Encoded images: about 450 MB for ImageNet's JPEGs. Shards are shuffled too.
_TFDS_SHUFFLE_BUFFER = 4096


class _NetworkRefused(Exception):
    """Raised inside TFDS when it tries to reach a host (not an OSError, so urllib3 does not retry it)."""


@contextlib.contextmanager
def _no_network():
    """Makes host-name lookups fail at once while TFDS prepares a dataset.

    TFDS would otherwise retry a download 10 times with backoff (3.5 minutes
    offline, and as long as it takes on a slow link). Yields the hosts asked for.
    Threads started inside stay refused afterwards: TFDS's download threads
    outlive a failed prepare, and the interpreter waits for them at exit.
    """
    import socket

    asked, saved, before = [], socket.getaddrinfo, set(threading.enumerate())
    started = weakref.WeakSet()

    def refuse(host, *args, **kwargs):
        asked.append(host)
        raise _NetworkRefused(f"no network access while preparing a dataset (asked for {host})")

    def afterwards(host, *args, **kwargs):
        if threading.current_thread() in started:
            return refuse(host)
        return saved(host, *args, **kwargs)

    socket.getaddrinfo = refuse
    try:
        yield asked
    finally:
        started.update(t for t in threading.enumerate() if t not in before)
        socket.getaddrinfo = afterwards if started else saved


@contextlib.contextmanager
def _quiet_absl():
    """TFDS logs absl warnings (e.g. "Variant folder ... has no dataset_info.json") on a first lookup."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tfds_configs_error(name, tfds):
    """A UserError for a `NAME/CONFIG` whose config does not exist, listing the valid ones."""
    base = name.split("/")[0].split(":")[0]
    try:
        configs = [c.name for c in tfds.builder_cls(base).BUILDER_CONFIGS]
    except Exception:  # noqa: BLE001 -- only for the message
        configs = None
    if configs == []:
        return UserError(f"TFDS dataset {base!r} has no configs: use tfds:{base} instead of tfds:{name}")
    if configs:
        return UserError(f"TFDS dataset {base!r} has no config in {name!r}; valid configs: {', '.join(configs)}")
    return None


def _missing_manual_files(builder, manual_dir):
    """The files a download builder expects that are not in `manual_dir` (TFDS looks there before downloading).

    Empty when TFDS does not record the file names; the no-network guard then decides.
    """
    try:
        names = [info.filename for info in (builder.url_infos or {}).values()]
    except Exception:  # noqa: BLE001 -- checksums unreadable: let the guarded prepare tell
        return []
    if not names or not all(names):
        return []
    return sorted(n for n in names if not os.path.exists(os.path.join(manual_dir, n)))


def tfds_builder(name, data_dir, manual_dir):
    """A prepared TFDS builder, or a one-line UserError saying why not (see the module docstring)."""
    import tensorflow_datasets as tfds

    if not name:
        raise UserError("empty TFDS name: use tfds:NAME[/CONFIG], e.g. tfds:imagenet2012")
    try:
        with _quiet_absl():
            builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"unknown TFDS dataset {name!r}") from None
    except (ValueError, AssertionError) as e:  # an unknown config or version
        configs_error = _tfds_configs_error(name, tfds) if "/" in name else None
        if configs_error and "BuilderConfig" in str(e):
            raise configs_error from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"TFDS dataset {name!r}: {first}") from None
    with _quiet_absl():
        prepared = builder.is_prepared()
    if not prepared:
        where = f" --data_dir {data_dir}" if data_dir else ""
        how = f"download it first (`tfds build {name}{where}`) or give --tfds-manual-dir with its downloaded files"
        if builder.MANUAL_DOWNLOAD_INSTRUCTIONS is None:
            if manual_dir is None:
                raise UserError(
                    f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and must be downloaded: {how}"
                )
            missing = _missing_manual_files(builder, manual_dir)
            if missing:
                raise UserError(
                    f"TFDS dataset {name!r} is not prepared and --tfds-manual-dir {manual_dir} lacks "
                    f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}: put them there, or {how}"
                )
        config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
        with _no_network() as asked:
            try:
                builder.download_and_prepare(download_config=config)
            except Exception as e:  # noqa: BLE001 -- missing manual files, no network, ...: all one line
                if asked:
                    raise UserError(
                        f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and must be downloaded "
                        f"(it asked for {asked[0]}; alexnet-keras does not download): {how}"
                    ) from None
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise UserError(
                    f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and preparing it failed: {first}"
                ) from None
    if builder.info.supervised_keys is None:
        raise UserError(f"TFDS dataset {name!r} has no (image, label) supervised keys")
    return builder


def tfds_split(builder, split):
    """The builder's split for `split` ("val" means validation, or test without it)."""
    if split == "val":
        known = builder.info.splits
        split = "test" if known and "validation" not in known and "test" in known else "validation"
    return split


def _tfds_usable(contents, name):
    """True for a JPEG/PNG within the limits; else prints one line (TFDS is read lazily, so not counted)."""
    height, width, supported = header_shape(contents)
    ok = supported & within_limits(height, width)

    def report():
        tf.print(
            f"alexnet-keras: warning: skipped an image of TFDS {name} (not JPEG/PNG or beyond the limits):",
            width,
            "x",
            height,
            output_stream=sys.stderr,
        )
        return tf.constant(False)

    return tf.cond(ok, lambda: tf.constant(True), report)


def tfds_dataset(builder, split, spec, *, train, batch_size, seed=0, crop=True):
    """(dataset, examples) of one split, decoded and preprocessed like folder images."""
    import tensorflow_datasets as tfds

    image_key = builder.info.supervised_keys[0]
    if not isinstance(builder.info.features[image_key], tfds.features.Image):
        raise UserError(f"TFDS dataset {builder.name!r}: {image_key!r} is not an image feature")
    raw = builder.as_dataset(
        split=split,
        as_supervised=True,
        shuffle_files=train,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
        decoders={image_key: tfds.decode.SkipDecoding()},  # decode in our parallel map, after shuffling
    )
    examples = int(raw.cardinality())
    raw = raw.map(lambda x, y: (x, tf.cast(y, tf.int32))).filter(lambda x, y: _tfds_usable(x, builder.name))
    ds = pipeline(
        raw,
        decode_checked,
        spec,
        train=train,
        batch_size=batch_size,
        seed=seed,
        crop=crop,
        shuffle_buffer=_TFDS_SHUFFLE_BUFFER,
    )
    return ds, (examples if examples >= 0 else None)


def tfds_train_images(name, *, data_dir, manual_dir):
    """The decoded images of a TFDS dataset's train split, in stored order, skipping unusable ones."""
    import tensorflow_datasets as tfds

    builder = tfds_builder(name, data_dir, manual_dir)
    image_key = builder.info.supervised_keys[0]
    raw = builder.as_dataset(split="train", as_supervised=True, decoders={image_key: tfds.decode.SkipDecoding()})
    raw = raw.map(lambda x, y: x).filter(lambda x: _tfds_usable(x, builder.name))
    return raw.map(decode_checked, tf.data.AUTOTUNE)


def tfds_info(builder, spec, batch_size, train_examples, val_examples):
    label = builder.info.features[builder.info.supervised_keys[1]]
    name = builder.name if not builder.builder_config else f"{builder.name}/{builder.builder_config.name}"
    return make_info(name, "tfds", list(label.names), train_examples, val_examples, spec, batch_size)


def load_tfds(name, spec, *, batch_size, seed, data_dir, manual_dir, validation):
    """`data.load` for `tfds:NAME`: the train split, and validation (or test) when asked."""
    builder = tfds_builder(name, data_dir, manual_dir)
    train_ds, train_n = tfds_dataset(builder, "train", spec, train=True, batch_size=batch_size, seed=seed)
    val_ds, val_n = None, None
    if validation:
        val_ds, val_n = tfds_dataset(builder, tfds_split(builder, "val"), spec, train=False, batch_size=batch_size)
    return train_ds, val_ds, tfds_info(builder, spec, batch_size, train_n, val_n)


def eval_tfds(name, spec, *, batch_size, split, crop, data_dir, manual_dir):
    """`data.eval_dataset` for `tfds:NAME`: one split, in its stored order."""
    builder = tfds_builder(name, data_dir, manual_dir)
    ds, n = tfds_dataset(builder, tfds_split(builder, split), spec, train=False, batch_size=batch_size, crop=crop)
    return ds, tfds_info(builder, spec, batch_size, None, n)
