"""alexnet_keras.evaluation: top-k error, ten crops, ensembles, intervals and scoring."""

from types import SimpleNamespace

import numpy as np
import pytest

from alexnet_keras import evaluation as ev
from alexnet_keras.errors import UserError
from alexnet_keras.models.presets import load_models


class FakeModel:
    """Duck-typed classifier: returns fixed scores per image, looked up by the image's first pixel."""

    def __init__(self, table, activation="softmax", wnids=None, spec=None, name="fake"):
        self.table = np.asarray(table, dtype=np.float64)
        self.classifier_activation = activation
        self.class_wnids = wnids
        self.preprocessing = spec or {
            "name": "paper",
            "input_size": 4,
            "resize": 6,
            "scale": 1.0,
            "mean": [0, 0, 0],
            "std": [1, 1, 1],
        }
        self.name = name
        self.output_shape = (None, self.table.shape[1])
        self.input_shape = (None, 4, 4, 3)
        self.calls = 0

    def predict_on_batch(self, x):
        self.calls += 1
        return self.table[x[:, 0, 0, 0].astype(int)]


def _info(classes, wnids=None, kind="folder", name="toy"):
    return SimpleNamespace(name=name, kind=kind, classes=classes, class_wnids=wnids)


def _batches(ids, labels, batch, size=4):
    """(images, labels) batches whose pixel [0, 0, 0] holds the row id."""
    for i in range(0, len(ids), batch):
        chunk = np.asarray(ids[i : i + batch])
        images = np.zeros((len(chunk), size, size, 3), np.float32)
        images[:, 0, 0, 0] = chunk
        yield images, np.asarray(labels[i : i + batch], np.int32)


# --- top-k -------------------------------------------------------------------
LOGITS = np.array(
    [
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # label 0: top-1 right
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # label 4: 5th best, top-5 right only
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # label 5: last, wrong at k=5
        [0.0, 1.0, 9.0, 2.0, 3.0, 4.0],  # label 2: top-1 right
    ]
)
LABELS = np.array([0, 4, 5, 2])


def test_topk_error_by_hand():
    assert ev.topk_error(LOGITS, LABELS, 1) == pytest.approx(2 / 4)
    assert ev.topk_error(LOGITS, LABELS, 5) == pytest.approx(1 / 4)
    assert ev.topk_error(LOGITS, LABELS, 6) == 0.0
    # softmax is monotone: probabilities give the same answer as logits
    assert ev.topk_error(ev.softmax(LOGITS), LABELS, 5) == pytest.approx(1 / 4)


def test_topk_ties_count_against_the_label():
    # by hand: the label is in the top k only if fewer than k other classes score >= it
    scores = np.array([[1.0, 1.0, 0.0]])
    assert ev.topk_error(scores, np.array([1]), 1) == 1.0  # class 0 ties it: one rival, k=1
    assert ev.topk_error(scores, np.array([1]), 2) == 0.0
    assert ev.topk_error(scores, np.array([2]), 2) == 1.0  # two rivals above
    assert ev.topk_error(scores, np.array([2]), 3) == 0.0
    row = np.array([[3.0, 2.0, 2.0, 2.0, 1.0]])  # label 1 ties with 2 and 3, below 0: three rivals
    assert [ev.topk_error(row, np.array([1]), k) for k in (1, 2, 3, 4, 5)] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert ev.topk_error(row, np.array([0]), 1) == 0.0  # a strict maximum is not a tie


def worst_case_rank(scores, label):
    """The label's 0-based place when every class tied with it is listed first (brute force by sorting)."""
    is_label = np.arange(scores.shape[0]) == label
    order = np.lexsort((is_label, -scores))  # by score, descending; among equals the label goes last
    return int(np.flatnonzero(order == label)[0])


def test_topk_ties_match_a_worst_case_sort():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(200, 8)).astype(np.float32)  # few values: many ties
    labels = rng.integers(0, 8, 200)
    ranks = np.array([worst_case_rank(row, label) for row, label in zip(scores, labels, strict=True)])
    for k in range(1, 9):
        np.testing.assert_array_equal(ev.topk_correct(scores, labels, k), ranks < k)
    # without ties the rule is the plain one: fewer than k classes strictly above
    smooth = rng.normal(size=(200, 8))
    own = smooth[np.arange(200), labels][:, None]
    for k in (1, 5):
        np.testing.assert_array_equal(ev.topk_correct(smooth, labels, k), (smooth > own).sum(1) < k)


def test_a_constant_model_gains_nothing_from_ties():
    scores = np.full((6, 10), 0.1)  # all ten classes tie on every image
    labels = np.arange(6)
    assert ev.topk_error(scores, labels, 1) == 1.0
    assert ev.topk_error(scores, labels, 5) == 1.0
    assert ev.topk_error(scores, labels, 10) == 0.0  # ten guesses out of ten classes cannot miss


def test_nonfinite_scores_count_as_wrong():
    nan, inf = np.nan, np.inf
    scores = np.array(
        [
            [nan, nan, nan],  # a NaN model: wrong even with k = all classes
            [0.9, nan, 0.1],  # one NaN among the scores
            [inf, 0.0, 0.0],  # an overflow
            [0.2, 0.7, 0.1],  # a sound row, right at k=1
        ]
    )
    labels = np.array([0, 0, 0, 1])
    for k in (1, 2, 3):
        np.testing.assert_array_equal(ev.topk_correct(scores, labels, k), [False, False, False, True])
    np.testing.assert_array_equal(ev.finite_rows(scores), [False, False, False, True])
    counter = ev.TopKCounter(ks=(1, 5))
    counter.update(scores, labels)
    assert (counter.nonfinite, counter.errors[1], counter.errors[5], counter.n) == (3, 3, 3, 4)


def test_topk_rejects_bad_labels():
    with pytest.raises(ValueError):
        ev.topk_error(LOGITS, np.array([0, 1, 2, 6]), 1)


def test_streaming_equals_batch():
    rng = np.random.default_rng(0)
    scores, labels = rng.normal(size=(103, 20)), rng.integers(0, 20, 103)
    counter = ev.TopKCounter(ks=(1, 5))
    for start, stop in [(0, 7), (7, 50), (50, 51), (51, 103)]:
        counter.update(scores[start:stop], labels[start:stop])
    assert counter.n == 103
    assert counter.error(1) == pytest.approx(ev.topk_error(scores, labels, 1))
    assert counter.error(5) == pytest.approx(ev.topk_error(scores, labels, 5))


# --- Wilson ------------------------------------------------------------------
def test_wilson_known_values():
    lo, hi = ev.wilson_interval(10, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.0552, 0.1744)
    # closed form by hand: centre (p + z^2/2n)/(1 + z^2/n), half z*sqrt(p(1-p)/n + z^2/4n^2)/(1 + z^2/n)
    z, p, n = 1.96, 0.1, 100
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert ev.wilson_interval(0, 10)[0] == 0.0
    assert ev.wilson_interval(10, 10)[1] == 1.0
    lo, hi = ev.wilson_interval(50, 100)
    assert lo + hi == pytest.approx(1.0)


def test_wilson_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    result = stats.binomtest(37, 250).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = ev.wilson_interval(37, 250, z=stats.norm.ppf(0.975))
    assert (lo, hi) == (pytest.approx(result.low), pytest.approx(result.high))


# --- ten crops ---------------------------------------------------------------
def _coordinate_image(h, w):
    """Pixel (r, c) holds (r, c, 0): crops reveal their own positions."""
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([r, c, np.zeros_like(r)], axis=-1).astype(np.float32)


def test_ten_crop_positions_and_flips():
    image = _coordinate_image(8, 10)
    crops = ev.ten_crop(image, 5)
    assert crops.shape == (10, 5, 5, 3)
    # top-left pixel (row, col) of each unflipped crop: 4 corners, then the centre (floored)
    corners = [tuple(crops[i, 0, 0, :2].astype(int)) for i in range(5)]
    assert corners == [(0, 0), (0, 5), (3, 0), (3, 5), (1, 2)]
    for i in range(5):
        t, left = corners[i]
        np.testing.assert_array_equal(crops[i], image[t : t + 5, left : left + 5])
        # the flipped crop mirrors columns: its first column is the crop's last one
        np.testing.assert_array_equal(crops[i + 5], crops[i][:, ::-1])
        assert crops[i + 5][0, 0, 1] == left + 4
    assert ev.CROP_NAMES[4] == "centre" and ev.CROP_NAMES[5] == "top-left flipped"


def test_ten_crop_paper_sizes():
    batch = np.stack([_coordinate_image(256, 256)] * 2)
    crops = ev.ten_crop(batch, 227)
    assert crops.shape == (2, 10, 227, 227, 3)
    assert tuple(crops[1, 4, 0, 0, :2]) == (14, 14)  # (256 - 227) // 2
    assert tuple(crops[0, 3, -1, -1, :2]) == (255, 255)
    assert tuple(ev.ten_crop(batch[0], 224)[4, 0, 0, :2]) == (16, 16)
    with pytest.raises(ValueError):
        ev.ten_crop(batch, 300)


# --- ensembles and scoring ---------------------------------------------------
def test_ensemble_averages_softmax():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    a = FakeModel(logits, activation=None, name="a")
    b = FakeModel(probs, activation="softmax", name="b")
    images = np.zeros((2, 4, 4, 3), np.float32)
    images[1, 0, 0, 0] = 1
    got = ev.predict_probs([a, b], images)
    e2 = np.exp(2.0)
    e3 = np.exp(3.0)
    expected = np.array(
        [
            [(e2 / (e2 + 2) + 0.1) / 2, (1 / (e2 + 2) + 0.8) / 2, (1 / (e2 + 2) + 0.1) / 2],
            [(1 / (e3 + 2) + 0.2) / 2, (1 / (e3 + 2) + 0.2) / 2, (e3 / (e3 + 2) + 0.6) / 2],
        ]
    )
    np.testing.assert_allclose(got, expected)


def test_ten_crop_prediction_averages_ten_views():
    model = FakeModel(np.eye(3))
    images = np.zeros((1, 6, 6, 3), np.float32)  # every crop's first pixel is 0 -> class 0
    probs = ev.predict_probs([model], images, ten_crop_size=4)
    assert model.calls == 10
    np.testing.assert_allclose(probs, [[1.0, 0.0, 0.0]])


def test_score_streams_and_matches_hand_counts():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(30, 8))
    labels = rng.integers(0, 8, 30)
    model = FakeModel(table, activation=None)
    s = ev.score(model, _batches(np.arange(30), labels, 7), _info(8))
    assert s.images == 30 and s.classes == 8
    assert s.top1_error == pytest.approx(ev.topk_error(table, labels, 1))
    assert s.top5_error == pytest.approx(ev.topk_error(table, labels, 5))
    errors5 = round(s.top5_error * 30)
    assert s.top5_ci95 == ev.wilson_interval(errors5, 30)
    assert not s.comparable and "8 classes" in s.reason
    assert s.label == "toy (30 images, 8 classes)"
    d = s.as_dict()
    assert set(d["ci95"]) == {"top1", "top5"}


def test_score_maps_labels_through_wnids():
    model_wnids = [f"n{i:08d}" for i in range(1000)]
    data_wnids = ["n00000999", "n00000003"]  # data label 0 -> output 999, 1 -> output 3
    table = np.zeros((2, 1000))
    table[0, 999] = table[1, 3] = 1.0
    model = FakeModel(table, wnids=model_wnids)
    s = ev.score(model, _batches([0, 1], [0, 1], 2), _info(2, data_wnids))
    assert s.top1_error == 0.0 and s.model_classes == 1000
    assert s.label == "ImageNet subset (2 images, 2 classes)"
    np.testing.assert_array_equal(ev.label_mapping(model, _info(2, data_wnids)), [999, 3])
    with pytest.raises(UserError, match="not among"):
        ev.label_mapping(model, _info(1, ["n99999999"]))


def test_class_mismatch_without_wnids_is_a_user_error():
    with pytest.raises(UserError, match="no wnids"):
        ev.label_mapping(FakeModel(np.eye(10)), _info(5))
    assert list(ev.label_mapping(FakeModel(np.eye(3)), _info(3))) == [0, 1, 2]


def test_comparable_only_on_full_imagenet_val():
    table = np.zeros((1, 1000))
    table[0, 0] = 1.0
    model = FakeModel(table, wnids=[f"n{i:08d}" for i in range(1000)])
    wnids = [f"n{i:08d}" for i in range(1000)]
    ids, labels = np.zeros(50_000, int), np.zeros(50_000, int)
    s = ev.score(model, _batches(ids, labels, 10_000), _info(1000, wnids, kind="tfds", name="imagenet2012"))
    assert s.comparable and s.images == 50_000 and s.top1_error == 0.0
    assert s.label.startswith("ImageNet-1k validation")
    short = ev.score(model, _batches(ids[:100], labels[:100], 50), _info(1000, wnids))
    assert not short.comparable and "100 images" in short.reason


def test_score_reports_nonfinite_outputs():
    table = np.eye(4) * 0.9 + 0.025
    table[[0, 1]] = np.nan  # images 0 and 1 come out NaN: half of them, still scored
    model = FakeModel(table, name="half")
    s = ev.score(model, _batches([0, 1, 2, 3], [0, 1, 2, 3], 3), _info(4))
    assert s.nonfinite == 2 and s.images == 4
    assert s.top1_error == 0.5 and s.top5_error == 0.5  # the NaN rows count as wrong even at k = 4 classes
    assert s.as_dict()["nonfinite"] == 2
    assert "non-finite outputs: 2 of 4 images (counted as wrong)" in s.summary()
    assert any("2 of 4 images had non-finite outputs" in w for w in s.warnings)
    clean = ev.score(FakeModel(np.eye(4)), _batches([0, 1, 2, 3], [0, 1, 2, 3], 4), _info(4))
    assert clean.nonfinite == 0 and clean.warnings == []
    assert "non-finite outputs: 0 of 4 images" in clean.summary() and "counted" not in clean.summary()


def test_score_refuses_a_mostly_nonfinite_model():
    table = np.eye(4)
    table[[0, 1, 2]] = np.nan  # 3 of 4: more than NONFINITE_LIMIT
    with pytest.raises(UserError, match=r"best\.keras gave non-finite outputs \(NaN or inf\) for 3 of 4 images"):
        ev.score(FakeModel(table), _batches([0, 1, 2, 3], [0, 1, 2, 3], 4), _info(4), names=["best.keras"])
    # logits that overflow to inf become NaN probabilities after the softmax: refused too
    logits = np.zeros((2, 3))
    logits[:, 0] = np.inf
    with pytest.raises(UserError, match="for 2 of 2 images"):
        ev.score(FakeModel(logits, activation=None), _batches([0, 1], [0, 0], 2), _info(3))


def test_score_refuses_a_nan_alexnet():
    """The issue's case: an AlexNet whose weights went NaN would have scored 0% error."""
    from alexnet_keras.models import AlexNet

    model = AlexNet("owt", classes=10, classifier_activation=None, seed=0)
    fc8 = model.get_layer("fc8")
    fc8.set_weights([fc8.get_weights()[0], np.full(10, np.nan, np.float32)])
    images = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32)
    with pytest.raises(UserError, match="non-finite outputs .* for 2 of 2 images"):
        ev.score(model, [(images, np.array([0, 1]))], _info(10))


def test_empty_data_and_wrong_size_are_user_errors():
    model = FakeModel(np.eye(3))
    with pytest.raises(UserError, match="no images"):
        ev.score(model, iter([]), _info(3))
    with pytest.raises(UserError, match="takes 4x4"):
        ev.score(model, _batches([0], [0], 1, size=5), _info(3))


def test_ensemble_needs_one_spec():
    a = FakeModel(np.eye(3), name="a")
    b = FakeModel(
        np.eye(3),
        name="b",
        spec={
            "name": "torchvision",
            "input_size": 224,
            "resize": 256,
            "scale": 1 / 255,
            "mean": [0.4] * 3,
            "std": [0.2] * 3,
        },
    )
    with pytest.raises(UserError, match="one preprocessing"):
        ev.check_ensemble([a, b])
    with pytest.raises(UserError, match="same classes"):
        ev.check_ensemble([a, FakeModel(np.eye(4), name="c")])


# --- files -------------------------------------------------------------------
def test_load_models_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_models([tmp_path / "missing.keras"])
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(UserError, match="cannot load"):
        load_models([bad])
    txt = tmp_path / "model.txt"
    txt.write_text("hello")
    with pytest.raises(UserError, match="not a Keras model"):
        load_models([txt])
    with pytest.raises(UserError, match="is a directory"):
        load_models([tmp_path])


def test_only_image_classifiers_are_scored(tmp_path):
    import keras

    vector = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    vector.save(tmp_path / "vector.keras")
    with pytest.raises(UserError, match=r"vector\.keras is not an image classifier .* \(None, 4\) to \(None, 2\)"):
        load_models([tmp_path / "vector.keras"])
    one = FakeModel(np.ones((1, 1)))  # a single output is no classifier
    with pytest.raises(UserError, match="not an image classifier"):
        ev.check_ensemble([one])
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    ev.check_classifier(plain)  # a plain Keras image classifier is fine


def test_contamination_warning(tmp_path):
    (tmp_path / "val" / "n01440764").mkdir(parents=True)
    (tmp_path / "val" / "n01440764" / "n01440764_1.JPEG").write_bytes(b"")
    (tmp_path / "val" / "n01440764" / "ILSVRC2012_val_00000293.JPEG").write_bytes(b"")
    imagenet = FakeModel(np.eye(1000))
    warnings = ev.contamination_warnings([imagenet], tmp_path)
    assert len(warnings) == 1 and "--only-imagenet-val" in warnings[0] and warnings[0].startswith("1 image file(s)")
    assert ev.contamination_warnings([imagenet], tmp_path, only_imagenet_val=True) == []
    assert ev.contamination_warnings([FakeModel(np.eye(10))], tmp_path) == []
