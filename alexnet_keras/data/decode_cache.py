"""Which image files the pipelines cannot use, found by one parallel pass and cached.

Folder images that do not decode (or are beyond the limits) are skipped and
counted, never crash a run: `data.load` checks every file once up front and
remembers the answer in ~/.cache/alexnet_keras (`$XDG_CACHE_HOME`), keyed by the
file names, sizes and mtimes, so the pass runs once per unchanged file set.
(Its cost on imagenette and per image: benchmarks/RESULTS.md.)
"""

import hashlib
import json
import logging
import os
import pathlib

import numpy as np
import tensorflow as tf

from .info import SKIP_LIMITS, SKIP_NOT_JPEG_PNG, SKIP_UNDECODABLE, SKIP_UNREADABLE
from .limits import LIMITS_TEXT, MAX_IMAGE_BYTES, header_shape, within_limits
from .transforms import AUTOTUNE, decode_image

log = logging.getLogger(__name__)


def find_unusable(paths):
    """{path: (reason, detail)} for the files the pipelines cannot use (a parallel tf.data pass).

    Each file's header is checked first (`header_shape`, `within_limits`); only
    JPEG and PNG files within the limits are then decoded, so a decompression
    bomb is skipped without allocating its pixels. Reasons are the SKIP_* constants.
    """
    if not paths:
        return {}

    def check(index, path):
        contents = tf.io.read_file(path)
        height, width, supported = header_shape(contents)
        ok = supported & within_limits(height, width)
        refused = tf.where(supported, tf.constant(1, tf.int64), tf.constant(2, tf.int64))
        # Decode only what passed; using the decoded shape makes the decoder run.
        code = tf.cond(ok, lambda: tf.shape(decode_image(contents), out_type=tf.int64)[0] * 0, lambda: refused)
        return index, code, height, width

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
    ds = ds.map(check, AUTOTUNE, deterministic=False).ignore_errors().batch(65536)
    codes = np.full(len(paths), -1, np.int64)  # -1: the read or decode failed
    shapes = np.zeros((len(paths), 2), np.int64)
    for index, code, height, width in ds.as_numpy_iterator():
        codes[index] = code
        shapes[index, 0], shapes[index, 1] = height, width
    reasons = {-1: SKIP_UNDECODABLE, 1: SKIP_LIMITS, 2: SKIP_NOT_JPEG_PNG}
    return {
        p: (reasons[c], f"{w}x{h}" if c == 1 else "")
        for p, c, (h, w) in zip(paths, codes.tolist(), shapes.tolist(), strict=True)
        if c != 0
    }


def _cache_dir():
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "alexnet_keras"


def unusable_cached(paths):
    """`find_unusable`, remembered under ~/.cache/alexnet_keras by file names, sizes and mtimes.

    Files over `MAX_IMAGE_BYTES` are refused from their size, unread.
    """
    bad, stats = {}, []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as e:
            bad[p] = (SKIP_UNREADABLE, e.strerror or "")
            continue
        if st.st_size > MAX_IMAGE_BYTES:
            bad[p] = (SKIP_LIMITS, f"{st.st_size:,} bytes")
        else:
            stats.append((p, st.st_size, st.st_mtime_ns))
    key = hashlib.sha256(json.dumps(["unusable-v2", tf.__version__, LIMITS_TEXT, stats]).encode()).hexdigest()[:32]
    cache = _cache_dir() / f"unusable-{key}.json"
    try:
        return {**bad, **{p: tuple(v) for p, v in json.loads(cache.read_text()).items()}}
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    log.info("checking that %d images decode (once; the result is cached)", len(stats))
    found = find_unusable([p for p, _, _ in stats])
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(found))
        tmp.replace(cache)
    except OSError:
        pass  # an unwritable cache only costs a re-check next time
    return {**bad, **found}
