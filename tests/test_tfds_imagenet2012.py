"""`tfds:imagenet2012` through the real TFDS builder, from tiny hand-made ILSVRC tars."""

import io
import tarfile

import numpy as np
from PIL import Image

from alexnet_keras import data

TRAIN = {"n01440764": 3, "n01443537": 2}  # wnid -> images
VAL_IMAGES = 4


def jpeg(seed, size):
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def add(tar, name, contents):
    member = tarfile.TarInfo(name)
    member.size = len(contents)
    tar.addfile(member, io.BytesIO(contents))


def tar_bytes(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, contents in files.items():
            add(tar, name, contents)
    return buf.getvalue()


def write_manual_dir(manual):
    """ILSVRC2012_img_train.tar holds one tar per class; ILSVRC2012_img_val.tar holds flat files.

    The builder labels val images by zipping their sorted names with its
    validation_labels.txt, so the first N names get its first N labels.
    """
    manual.mkdir()
    per_class = {
        f"{wnid}.tar": tar_bytes({f"{wnid}_{i}.JPEG": jpeg(i, (30 + 7 * i, 41)) for i in range(n)})
        for wnid, n in TRAIN.items()
    }
    (manual / "ILSVRC2012_img_train.tar").write_bytes(tar_bytes(per_class))
    val = {f"ILSVRC2012_val_{i:08d}.JPEG": jpeg(100 + i, (37, 23 + i)) for i in range(1, VAL_IMAGES + 1)}
    (manual / "ILSVRC2012_img_val.tar").write_bytes(tar_bytes(val))


def test_real_imagenet2012_builder(tmp_path):
    import tensorflow_datasets as tfds

    write_manual_dir(tmp_path / "manual")
    train, val, info = data.load(
        "tfds:imagenet2012",
        batch_size=2,
        tfds_data_dir=tmp_path / "tfds",
        tfds_manual_dir=tmp_path / "manual",
    )
    assert (info.kind, info.classes, info.train_examples, info.val_examples) == ("tfds", 1000, 5, 4)

    labels_dir = tfds.core.tfds_path("datasets/imagenet2012")
    wnids = (labels_dir / "labels.txt").read_text().split()
    val_wnids = (labels_dir / "validation_labels.txt").read_text().split()[:VAL_IMAGES]
    assert info.class_wnids == wnids
    val_labels = np.concatenate([y.numpy() for _, y in val])
    assert sorted(wnids[y] for y in val_labels) == sorted(val_wnids)  # TFDS stores them shuffled

    train_labels = np.concatenate([y.numpy() for x, y in train])
    assert len(train_labels) == 4  # 5 images, last partial batch dropped
    assert set(wnids[y] for y in train_labels) <= set(TRAIN)
    assert next(iter(train))[0].shape == (2, 227, 227, 3)
