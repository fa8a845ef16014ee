"""One voice across commands: public strategy names, typed --set errors, predict's errors name its flags,
usage errors point to the subcommand's --help, every train option has help, evaluate --json says each
thing once, and predict warns when the ImageNet names it prints cannot be what the model learned."""

import json

import click
import pytest

from alexnet_keras import AlexNet, cli
from alexnet_keras.evaluation import Score
from alexnet_keras.weights.torchvision import class_wnids as torchvision_class_wnids


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_every_train_option_has_help():
    options = [p for p in cli.train.params if isinstance(p, click.Option)]
    assert len(options) > 20  # the flag table, --resume, --config, --set, --quiet, --json...
    assert [p.opts[0] for p in options if not (p.help or "").strip()] == []


@pytest.mark.parametrize(
    "argv",
    [["train", "--epochs", "0"], ["evaluate", "--data", "synthetic"], ["show", "curves"], ["predict"]],
)
def test_usage_errors_point_to_the_subcommands_help(argv, capsys):
    code, _, err = run(argv, capsys)
    where = "alexnet-keras " + " ".join(a for a in argv if not a.startswith("-") and not a[0].isdigit())
    where = " ".join(where.split()[: 1 + (2 if argv[0] == "show" else 1)])
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("alexnet-keras: error: ") and err.rstrip().endswith(f"(see '{where} --help')")


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("batch_size=abc", "expected an integer"),
        ("lr=abc", "expected a number"),
        ("jit_compile=maybe", "expected true or false"),
    ],
)
def test_set_says_what_type_it_expected(setting, expected, capsys):
    code, _, err = run(["train", "--set", setting], capsys)
    key, value = setting.split("=")
    assert code == 2 and err == f"alexnet-keras: error: bad value for {key}: '{value}' ({expected})\n"


def test_strategy_names_are_public():
    import tensorflow as tf

    from alexnet_keras.training.distribute import strategy_name

    assert type(tf.distribute.get_strategy()).__name__ == "_DefaultDistributionStrategy"
    assert strategy_name(tf.distribute.get_strategy()) == "default"


def test_predict_errors_name_the_flag(tmp_path, capsys):
    image = tmp_path / "cat.jpg"
    image.write_bytes(b"not read: the model is checked first")
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    cases = {
        "--model (a .keras file) or --weights (.pth or .npz)": [],
        "exactly one of model files: --model": ["--model", "a.keras", "--weights", "b.npz"],
        f"--model {tmp_path / 'missing.keras'}: file not found": ["--model", str(tmp_path / "missing.keras")],
        f"--weights {tmp_path / 'missing.pth'}: file not found": ["--weights", str(tmp_path / "missing.pth")],
        f"--model {tmp_path} is a directory": ["--model", str(tmp_path)],
        f"--weights {text}: ": ["--weights", str(text)],
    }
    for fragment, flags in cases.items():
        code, _, err = run(["predict", str(image), *flags], capsys)
        assert code == 2 and err.count("\n") == 1 and fragment in err, (flags, err)


def _score():
    return Score(
        top1_error=0.5,
        top5_error=0.2,
        top1_ci95=(0.43, 0.57),
        top5_ci95=(0.15, 0.26),
        images=200,
        classes=10,
        model_classes=10,
        comparable=False,
        reason="10 classes",
        label="toy (200 images, 10 classes)",
    )


def test_evaluate_json_says_each_thing_once():
    printed = json.dumps(cli._evaluate_json(_score(), "this run took 1 s here"))

    def unique(pairs):  # every object as printed, repeated keys kept
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), keys
        return dict(pairs)

    d = json.loads(printed, object_pairs_hook=unique)
    # no list printed under two names (the intervals were under ci95 and under top1_ci95/top5_ci95)
    lists = [json.dumps(v) for v in d.values() if isinstance(v, list) and v]
    lists += [json.dumps(x) for v in d.values() if isinstance(v, dict) for x in v.values() if isinstance(x, list)]
    assert len(lists) == len(set(lists)) == 2
    assert d["ci95"] == {"top1": [0.43, 0.57], "top5": [0.15, 0.26]}
    assert d["top1_error"] == 0.5 and d["clock"] == "this run took 1 s here"


@pytest.fixture(scope="module")
def untitled_model():
    return AlexNet("owt")  # 1000 outputs, no class_wnids: its outputs would be read as ImageNet-1k's


def test_synthetic_run_warns_when_predict_prints_imagenet_names(untitled_model, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"synthetic_data": True}))
    source = str(run / "checkpoints" / "last.keras")
    warning = cli._imagenet_names_warning(untitled_model, source)
    assert (
        warning
        == f"{source} was trained on synthetic data ({run}): the ImageNet names below are not classes it learned"
    )
    (run / "summary.json").unlink()  # a run still going has only config.json
    (run / "config.json").write_text(json.dumps({"config": {"data": "synthetic"}}))
    assert "was trained on synthetic data" in cli._imagenet_names_warning(untitled_model, source)
    (run / "config.json").write_text(json.dumps({"config": {"data": "/data/imagenet"}}))
    assert "does not record its classes" in cli._imagenet_names_warning(untitled_model, source)
    # Converted torchvision weights (--weights) are ImageNet's: no warning without evidence of synthetic data.
    assert cli._imagenet_names_warning(untitled_model, source, "--weights") is None


def test_no_warning_for_a_model_that_knows_its_imagenet_classes(tmp_path):
    model = AlexNet("owt", class_wnids=torchvision_class_wnids(1000))
    (tmp_path / "summary.json").write_text(json.dumps({"synthetic_data": True}))
    assert cli._imagenet_names_warning(model, str(tmp_path / "model.keras")) is None
