"""Builds alexnet_keras/resources/imagenet_classes.csv from two published sources.

* WordNet ids, in the standard ImageNet-1k order (sorted wnids, the order of
  torchvision's and Caffe's AlexNet outputs): `tensorflow_datasets/datasets/
  imagenet2012/labels.txt`, shipped in the tensorflow-datasets wheel (Apache-2.0).
* Human-readable names: `_IMAGENET_CATEGORIES` in `torchvision/models/_meta.py`,
  shipped in the torchvision wheel (BSD-3-Clause). Its names are unique (it
  writes "crane bird" and "maillot tank suit" for the two duplicated synsets).

Both packages are installed in the dev environment (torchvision through the
`torch` extra), so rebuilding needs no network:

    python tools/build_imagenet_classes.py
"""

import csv
import importlib.metadata
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parents[1] / "alexnet_keras" / "resources" / "imagenet_classes.csv"


def main():
    # torchvision first: importing it after TensorFlow segfaults (see tests/conftest.py).
    import tensorflow_datasets
    from torchvision.models._meta import _IMAGENET_CATEGORIES as names

    labels = pathlib.Path(tensorflow_datasets.__file__).parent / "datasets" / "imagenet2012" / "labels.txt"
    wnids = labels.read_text().split()
    if len(wnids) != 1000 or len(names) != 1000 or wnids != sorted(wnids):
        sys.exit(f"unexpected sources: {len(wnids)} wnids, {len(names)} names")
    versions = {p: importlib.metadata.version(p) for p in ("tensorflow-datasets", "torchvision")}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", newline="") as f:
        f.write(
            "# ImageNet-1k (ILSVRC 2012) classes in the standard order; built by tools/build_imagenet_classes.py\n"
            f"# wnid: tensorflow-datasets {versions['tensorflow-datasets']}, "
            "tensorflow_datasets/datasets/imagenet2012/labels.txt (Apache-2.0)\n"
            f"# name: torchvision {versions['torchvision']}, "
            "torchvision/models/_meta.py _IMAGENET_CATEGORIES (BSD-3-Clause)\n"
        )
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["index", "wnid", "name"])
        writer.writerows((i, wnid, name) for i, (wnid, name) in enumerate(zip(wnids, names, strict=True)))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
