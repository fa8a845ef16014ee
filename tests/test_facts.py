"""Every recipe constant, as the code actually builds it, against the paper's data files.

The numbers come from `simulations/data/*.csv` (shipped in the package, a source per row),
never retyped here. Where ../shared is present, the data files are also checked against
`alexnet-facts.md` (under CI=true that check must not skip).
"""

import re

import keras
import numpy as np
import pytest

from alexnet_keras import data
from alexnet_keras.preprocessing import get_spec
from alexnet_keras.simulations import hardware, paper
from alexnet_keras.training.callbacks import LearningRateSchedule
from alexnet_keras.training.config import MAX_LR_DROPS, PAPER_EPOCHS, TrainConfig
from conftest import shared_path

RECIPE = paper.recipe()


@pytest.fixture(scope="module")
def model():
    from alexnet_keras import AlexNet

    return AlexNet()


def test_training_defaults_are_the_papers():
    config = TrainConfig()
    assert config.batch_size == RECIPE["batch_size"]
    assert config.lr == RECIPE["lr"]
    assert config.momentum == RECIPE["momentum"]
    assert config.weight_decay == RECIPE["weight_decay"]
    assert config.dropout_rate == RECIPE["dropout_rate"]
    assert config.lr_schedule == "paper"
    assert PAPER_EPOCHS == RECIPE["epochs"]


class _FakeOptimizer:
    def __init__(self, lr):
        self.learning_rate = keras.Variable(lr)


def test_plateau_schedule_divides_by_ten_at_most_three_times():
    schedule = LearningRateSchedule(RECIPE["lr"], boundaries=None, patience=1, echo=lambda *_: None)
    schedule.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    schedule.model.optimizer = _FakeOptimizer(RECIPE["lr"])
    lrs = []
    for epoch in range(12):  # validation error never improves after the first epoch
        schedule.on_epoch_begin(epoch)
        lrs.append(float(schedule.model.optimizer.learning_rate.numpy()))
        schedule.on_epoch_end(epoch, {"val_acc": 0.5})
    drops = [a / b for a, b in zip(lrs[:-1], lrs[1:], strict=True) if not np.isclose(a, b)]
    assert MAX_LR_DROPS == RECIPE["lr_drops"]
    assert len(drops) == RECIPE["lr_drops"]
    np.testing.assert_allclose(drops, RECIPE["lr_drop_factor"], rtol=1e-6)
    assert lrs[-1] == pytest.approx(RECIPE["lr"] / RECIPE["lr_drop_factor"] ** RECIPE["lr_drops"])


def test_lrn_constants_as_built(model):
    for name in ("lrn1", "lrn2"):
        cfg = model.get_layer(name).get_config()
        assert cfg["bias"] == RECIPE["lrn_k"]
        assert 2 * cfg["depth_radius"] + 1 == RECIPE["lrn_n"]
        assert cfg["alpha"] == pytest.approx(RECIPE["lrn_alpha"])
        assert cfg["beta"] == RECIPE["lrn_beta"]


def test_dropout_as_built(model):
    for name in ("drop6", "drop7"):
        layer = model.get_layer(name)
        assert layer.rate == RECIPE["dropout_rate"]
        x = np.ones((2, 4096), "float32")
        np.testing.assert_allclose(np.asarray(layer(x, training=False)), x * RECIPE["dropout_test_scale"])


def test_pooling_as_built(model):
    for name in ("pool1", "pool2", "pool5"):
        cfg = model.get_layer(name).get_config()
        assert tuple(cfg["pool_size"]) == (RECIPE["pool_size"],) * 2
        assert tuple(cfg["strides"]) == (RECIPE["pool_stride"],) * 2


def test_initialisation_as_built(model):
    for layer in model.layers:
        if not layer.weights or layer.name.startswith("lrn"):
            continue
        kernel, bias = (np.asarray(w) for w in layer.weights[:2])
        assert kernel.std() == pytest.approx(RECIPE["init_std"], rel=0.05), layer.name
        want = 1.0 if layer.name in RECIPE["bias_one_layers"] else 0.0
        assert np.all(bias == want), layer.name


def test_pca_noise_and_resize_constants():
    assert data.PCA_ALPHA_STD == RECIPE["pca_alpha_std"]
    assert get_spec("paper")["resize"] == RECIPE["resize"]


def test_training_transform_flips_horizontally():
    import tensorflow as tf

    spec = dict(get_spec("paper"))
    size = spec["input_size"]
    # A 256x256 image whose columns are all different and whose crop is fixed:
    # make the image exactly the input size so the random crop is the identity.
    spec["resize"] = size
    image = tf.constant(np.tile(np.arange(size, dtype="uint8")[None, :, None], (size, 1, 3)))
    flipped = 0
    for s in range(16):
        out = np.asarray(data.train_transform(image, spec, tf.constant([s, 7], tf.int64)))
        column_means = out.mean(axis=(0, 2))
        flipped += column_means[0] > column_means[-1]  # rising ramp became falling
    assert RECIPE["horizontal_flip"] is True
    assert 3 <= flipped <= 13  # a fair coin over 16 draws


# --- the data files against the shared facts file ---------------------------
def _facts():
    return shared_path("reference", "alexnet-facts.md").read_text(encoding="utf-8")


def _number_after(text, pattern):
    match = re.search(pattern, text)
    assert match, pattern
    return float(match.group(1).rstrip("."))


def test_recipe_file_matches_facts():
    facts = _facts()
    assert _number_after(facts, r"SGD with batch (\d+)") == RECIPE["batch_size"]
    assert _number_after(facts, r"momentum ([\d.]+)") == RECIPE["momentum"]
    assert _number_after(facts, r"weight decay ([\d.]+)") == RECIPE["weight_decay"]
    assert _number_after(facts, r"Learning rate: ([\d.]+)") == RECIPE["lr"]
    assert _number_after(facts, r"divided by (\d+) when") == RECIPE["lr_drop_factor"]
    assert _number_after(facts, r"That happened (\d+) times") == RECIPE["lr_drops"]
    assert _number_after(facts, r"over about (\d+) epochs") == RECIPE["epochs"]
    assert _number_after(facts, r"standard deviation ([\d.]+)\)") == RECIPE["init_std"]
    assert _number_after(facts, r"a_i ~ N\(0, ([\d.]+)\)") == RECIPE["pca_alpha_std"]
    assert _number_after(facts, r"Dropout: ([\d.]+) in training") == RECIPE["dropout_rate"]
    lrn = re.search(r"with k=(\d+), n=(\d+), alpha=([\d.e-]+) and beta=([\d.]+)", facts)
    assert tuple(float(g.rstrip(".")) for g in lrn.groups()) == (
        RECIPE["lrn_k"],
        RECIPE["lrn_n"],
        RECIPE["lrn_alpha"],
        RECIPE["lrn_beta"],
    )
    biases = re.search(r"Biases are 1 in ([^,]+), ([^,]+), ([^ ]+) and (fc\d)/(fc\d)", facts).groups()
    assert tuple(b.strip() for b in biases) == RECIPE["bias_one_layers"]


def test_paper_tables_match_facts():
    facts = _facts()
    section = facts.split("## Results", 1)[1].split("\n## ", 1)[0]
    table2 = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.match(r"^\d+ CNNs?\*?", cells[0]):
            model = re.sub(r"\s*\(.*\)$", "", cells[0])
            table2[model] = [None if c == "-" else float(c) / 100 for c in cells[1:]]
    rows = [r for r in paper.tables() if r["table"] == 2]
    assert {r["model"] for r in rows} == set(table2)
    for r in rows:
        top1, top5, test5 = table2[r["model"]]
        if r["split"] == "val":
            assert (r["top1_error"], r["top5_error"]) == pytest.approx((top1, top5))
        else:
            assert r["top5_error"] == pytest.approx(test5)
    t1 = {r["model"]: (r["top1_error"], r["top5_error"]) for r in paper.tables() if r["table"] == 1}
    assert t1["CNN"] == pytest.approx(
        tuple(
            v / 100
            for v in map(float, re.search(r"test set \[P Table 1\]: ([\d.]+)% top-1 and ([\d.]+)%", facts).groups())
        )
    )
    assert t1["CNN (centre patch only)"] == pytest.approx(
        tuple(v / 100 for v in map(float, re.search(r"averaging: ([\d.]+)% and ([\d.]+)%", facts).groups()))
    )
    assert t1["best ILSVRC-2010 entry"] == pytest.approx(
        tuple(
            v / 100 for v in map(float, re.search(r"best ILSVRC-2010 entry: ([\d.]+)% and ([\d.]+)%", facts).groups())
        )
    )


def test_gtx580_file_matches_facts():
    facts = _facts()
    hw = facts.split("## Hardware", 1)[1].split("\n## ", 1)[0]
    gpu = hardware.GTX580
    assert gpu.value("cuda_cores") == _number_after(hw, r"(\d+) CUDA cores")
    assert gpu.value("shader_clock") == _number_after(hw, r"(\d+) MHz shader clock")
    assert gpu.value("memory_bus") == _number_after(hw, r"(\d+)-bit GDDR5")
    assert gpu.value("memory_clock_effective") == _number_after(hw, r"at (\d+) MHz effective")
    assert gpu.value("memory_bandwidth") == _number_after(hw, r"\(([\d.]+) GB/s\)")
    assert gpu.value("tdp") == _number_after(hw, r"(\d+) W TDP")
    assert gpu.value("memory_reference_card") == _number_after(hw, r"reference card has ([\d.]+) GB")
    assert gpu.value("memory_paper_card") == _number_after(hw, r"the cards \[P\] used had (\d+) GB")
    assert gpu.value("peak_fp32") == _number_after(hw.replace(",", ""), r"= (\d+) GFLOP/s")


def test_mean_pixel_is_keras_applications_caffe_mean():
    # The source named beside IMAGENET_MEAN_RGB: keras.applications' "caffe" mode subtracts it (in BGR order).
    from keras.applications import imagenet_utils

    from alexnet_keras.preprocessing import get_spec, normalize

    zeros = np.zeros((1, 1, 1, 3), "float32")
    theirs = np.asarray(imagenet_utils.preprocess_input(zeros.copy(), mode="caffe"))[..., ::-1]  # BGR -> RGB
    ours = np.asarray(normalize(zeros, get_spec("paper")))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
