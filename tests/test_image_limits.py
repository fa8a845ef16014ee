"""Bounded work per image: absurd aspect ratios and decompression bombs are refused
from their headers, before any decoding (issue 13, item 6).

Memory is the peak RSS of one command, read by a small wrapper process from
RUSAGE_CHILDREN, so each run is measured on its own and not inflated by pytest.
"""

import functools
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_keras import data
from alexnet_keras.errors import UserError

CLI = [sys.executable, "-m", "alexnet_keras_cli"]
MB = 2**20


# --- files ---------------------------------------------------------------------------------------
def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache
def png_bomb(width, height):
    """A valid 8-bit grey PNG of zeros: 20000x20000 is 0.4 MB on disk and 1.2 GB decoded as RGB."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte 0, then the pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_bomb(width, height):
    """A 16x16 JPEG whose frame header is patched to declare width x height. libjpeg fills the
    missing rows, so TF decodes 13000x13000 to 507 MB (it refuses outputs over 512 MiB itself)."""
    contents = bytearray(encode(np.full((16, 16, 3), 100, np.uint8), "JPEG"))
    sof = contents.index(b"\xff\xc0")
    contents[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(contents)


def encode(array, fmt, mode=None, **kwargs):
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8), mode).save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def strip(width, height):
    """A tiny PNG strip such as 6000x1 (about 100 bytes)."""
    return encode(np.full((height, width, 3), 128, np.uint8), "PNG")


def write(path, contents):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(contents)
    return path


def small_folder(root, classes=("a", "b"), per_class=3):
    for c, cls in enumerate(classes):
        for split, n in (("train", per_class), ("val", 1)):
            for i in range(n):
                write(root / split / cls / f"{i}.jpg", encode(noise((48 + 8 * i, 64, 3), 10 * c + i), "JPEG"))
    return root


# --- the limits ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "height, width, ok",
    [
        (1, 1, True),
        (1, 50, True),  # MAX_ASPECT_RATIO = 50 exactly
        (1, 51, False),
        (51, 1, False),
        (1, 6000, False),
        (2000, 1, False),
        (0, 10, False),
        (375, 500, True),
        (9459, 9459, True),  # 89,472,681 pixels, under PIL's 89,478,485
        (9460, 9460, False),  # 89,491,600
        (20000, 20000, False),
    ],
)
def test_within_limits(height, width, ok):
    assert bool(data.within_limits(height, width)) is ok
    as_tensors = data.within_limits(tf.constant(height, tf.int64), tf.constant(width, tf.int64))
    assert bool(as_tensors.numpy()) is ok


def test_limits_are_the_documented_values():
    from PIL import Image as PILImage

    assert data.MAX_IMAGE_PIXELS == PILImage.MAX_IMAGE_PIXELS == 89_478_485
    assert data.MAX_ASPECT_RATIO == 50 and data.MAX_IMAGE_BYTES == 256 * MB


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL reads the bombs' headers too
@pytest.mark.parametrize(
    "contents, size",
    [
        (encode(noise((37, 53, 3)), "JPEG"), (37, 53)),
        (encode(noise((64, 20, 3)), "JPEG", progressive=True), (64, 20)),
        (encode(noise((30, 31)), "JPEG", "L"), (30, 31)),
        (encode(noise((20, 40, 4)), "JPEG", "CMYK"), (20, 40)),
        (encode(noise((33, 17, 3)), "PNG"), (33, 17)),
        (encode(noise((9, 700)), "PNG", "L"), (9, 700)),
        (encode(noise((5, 6, 4)), "PNG", "RGBA"), (5, 6)),
        (png_bomb(300, 200), (200, 300)),
        (jpeg_bomb(13000, 12000), (12000, 13000)),
    ],
)
def test_header_shape_matches_pil(contents, size):
    assert Image.open(io.BytesIO(contents)).size == size[::-1]  # PIL reads (width, height)
    height, width, supported = (v.numpy() for v in data.header_shape(contents))
    assert (height, width, supported) == (*size, True)


def test_header_shape_of_other_formats_is_unsupported():
    gif = encode(noise((8, 8)), "GIF", "L")
    assert [v.numpy() for v in data.header_shape(gif)] == [-1, -1, False]
    with pytest.raises(tf.errors.InvalidArgumentError):
        data.decode_checked(gif)


def test_decode_checked_refuses_bombs_and_strips_but_decodes_the_rest():
    for contents in (png_bomb(20000, 20000), jpeg_bomb(13000, 13000), strip(6000, 1), strip(1, 2000)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="beyond the limits"):
            data.decode_checked(contents)
    image = noise((7, 9, 3))
    np.testing.assert_array_equal(data.decode_checked(encode(image, "PNG")).numpy(), image)


# --- one image (predict) ---------------------------------------------------------------------------
def test_read_image_names_the_file_and_the_limit(tmp_path):
    cases = {
        "strip.png": (strip(6000, 1), "6000x1 pixels, beyond the limits"),
        "tall.png": (strip(1, 2000), "1x2000 pixels, beyond the limits"),
        "bomb.png": (png_bomb(20000, 20000), "20000x20000 pixels, beyond the limits"),
        "bomb.jpg": (jpeg_bomb(13000, 13000), "13000x13000 pixels, beyond the limits"),
    }
    for name, (contents, message) in cases.items():
        path = write(tmp_path / name, contents)
        with pytest.raises(UserError, match=f"image .*{name} is {message}.*not decoded"):
            data.load_image(path, "paper")
    # An image at the aspect limit still works: 50x1 -> 256x12800 -> centre crop.
    assert data.load_image(write(tmp_path / "ok.png", strip(50, 1)), "paper").shape == (227, 227, 3)


def test_gif_first_frame_through_pil_and_gif_bomb_refused(tmp_path):
    frames = [Image.fromarray(np.full((10, 12, 3), v, np.uint8)) for v in (30, 200, 90)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    image = data.read_image(path)
    assert image.shape == (10, 12, 3) and np.all(np.asarray(image) == 30)  # the first frame only
    # GIF's logical screen is 16-bit: declare 60000x60000 in a 1x1 GIF's header.
    small = bytearray(encode(np.zeros((1, 1), np.uint8), "GIF", "L"))
    small[6:10] = struct.pack("<HH", 60000, 60000)
    write(tmp_path / "bomb.gif", bytes(small))
    with pytest.raises(UserError, match="bomb.gif .*(60000x60000|pixels).*not decoded"):
        data.read_image(tmp_path / "bomb.gif")


# --- folders: skipped and counted, never decoded ---------------------------------------------------
@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_folder_skips_and_counts_strips_and_bombs(tmp_path, private_cache):
    root = small_folder(tmp_path / "ds")
    write(root / "train/a/strip.png", strip(2000, 1))
    write(root / "train/b/bomb.png", png_bomb(20000, 20000))
    write(root / "val/a/bomb.jpg", jpeg_bomb(13000, 13000))
    with pytest.warns(
        UserWarning, match=r"3 beyond the image limits.*strip\.png 2000x1.*bomb\.png 20000x20000.*bomb\.jpg 13000x13000"
    ):
        train, val, info = data.load(root, batch_size=2)
    assert info.skip_reasons == {data.SKIP_LIMITS: 3} and info.skipped == 3
    assert (info.train_examples, info.val_examples) == (6, 2)
    assert sum(len(y) for _, y in train) == 6 and sum(len(y) for _, y in val) == 2


CHILD_LOAD = textwrap.dedent(
    """
    import sys, warnings
    from alexnet_keras import data
    warnings.simplefilter("ignore")
    train, val, info = data.load(sys.argv[1], batch_size=2)
    n = sum(len(y) for _, y in train) + sum(len(y) for _, y in val)
    print(info.skipped, n)
    """
)


# Runs a command and records its peak RSS. The command is started from this small process, not
# from pytest: a child's ru_maxrss includes its parent's resident memory at fork time.
_MEASURE = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)"
)


def peak_of(argv, env=None, cwd=None, timeout=900):
    """(returncode, stdout, stderr, peak RSS in MiB) of one command."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        record = os.path.join(tmp, "maxrss")
        result = subprocess.run(
            [sys.executable, "-c", _MEASURE, record, *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=timeout,
        )
        with open(record) as f:
            peak = int(f.read()) / 1024  # ru_maxrss is in KiB on Linux
    return result.returncode, result.stdout, result.stderr, peak


@pytest.mark.slow
def test_folder_check_does_not_decode_bombs(tmp_path):
    """Before the header check, the up-front decode pass decoded both bombs (+1.7 GB)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    clean = small_folder(tmp_path / "clean")
    bombs = small_folder(tmp_path / "bombs")
    write(bombs / "train/a/bomb.png", png_bomb(20000, 20000))
    write(bombs / "train/b/bomb.jpg", jpeg_bomb(13000, 13000))
    runs = {}
    for name, root in (("clean", clean), ("bombs", bombs)):
        code, out, err, peak = peak_of([sys.executable, "-c", CHILD_LOAD, str(root)], env=env)
        assert code == 0, err[-2000:]
        runs[name] = (out.split(), peak)
    assert runs["clean"][0] == ["0", "8"] and runs["bombs"][0] == ["2", "8"]
    print("peak RSS MiB:", runs)
    assert runs["bombs"][1] < runs["clean"][1] + 200, runs  # MiB; decoding them costs 1200 + 507


# --- the CLI: predict and train --------------------------------------------------------------------
@pytest.fixture(scope="module")
def owt_npz(tmp_path_factory):
    """A seeded owt model's weights as .npz (no torch needed)."""
    import keras

    from alexnet_keras import AlexNet
    from alexnet_keras.weights import export_npz

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("owt") / "owt.npz"
    export_npz(AlexNet("owt"), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, contents, dims",
    [("tiny.png", strip(6000, 1), "6000x1"), ("bomb.png", png_bomb(20000, 20000), "20000x20000")],
    ids=["6000x1", "bomb"],
)
def test_predict_strip_and_bomb_one_line_under_3gb(tmp_path, owt_npz, name, contents, dims):
    """Before: 6.1 GB peak for the 6000x1 PNG (its short side upscaled to 256)."""
    image = write(tmp_path / name, contents)
    code, out, err, peak = peak_of([*CLI, "predict", str(image), "--weights", str(owt_npz)], cwd=tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("alexnet-keras: error: image ") and str(image) in lines[0]
    assert dims in lines[0]
    print(f"predict {name}: peak RSS {peak:.0f} MiB")
    assert peak < 3 * 1024, peak


def _train(data_dir, run_dir, env):
    argv = [
        *CLI,
        "train",
        "--data",
        str(data_dir),
        "--run-dir",
        str(run_dir),
        "--variant",
        "owt",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
    ]
    return peak_of(argv, env=env)


@pytest.mark.slow
def test_train_with_a_2000x1_image_costs_at_most_10_percent_more(tmp_path):
    """Before: +1.5 GB, the strip's short side upscaled to 256 (a 256 x 512000 float image)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    clean = small_folder(tmp_path / "clean", per_class=4)
    with_strip = small_folder(tmp_path / "strip", per_class=4)
    write(with_strip / "train/a/strip.png", strip(2000, 1))
    write(with_strip / "val/b/strip.png", strip(1, 2000))  # validation reads every file, so it is used
    peaks, errs = {}, {}
    for name, root in (("clean", clean), ("strip", with_strip)):
        code, out, errs[name], peaks[name] = _train(root, tmp_path / f"run-{name}", env)
        assert code == 0 and "Traceback" not in errs[name], errs[name][-3000:]
        summary = json.loads((tmp_path / f"run-{name}" / "summary.json").read_text())
        assert summary["skipped_files"] == (2 if name == "strip" else 0)
    assert "2 beyond the image limits" in errs["strip"]
    print("train peak RSS MiB:", peaks)
    assert peaks["strip"] <= 1.10 * peaks["clean"], peaks


def test_header_shape_of_a_corrupt_png_raises():
    good = encode(noise((4, 4, 3)), "PNG")
    for corrupt in (good[:20], good[:12] + b"IDAT" + good[16:]):
        with pytest.raises(tf.errors.InvalidArgumentError):
            data.header_shape(corrupt)
