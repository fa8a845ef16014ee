"""Bad inputs of `tune` and `ablate` (run by tests/test_bad_inputs.py)."""

import json

from badinput import case

TINY = ["--steps-per-epoch", "1", "--validation-steps", "1", "--batch-size", "8"]


def _space(space):
    def setup(tmp):
        path = tmp / "space.json"
        path.write_text(json.dumps(space))
        return {"space": path}

    return setup


CASES = [
    case(
        "tune-space-unknown-hyperparameter",
        ["tune", "--space", "{space}"],
        "unknown hyperparameter 'learning_rate'",
        setup=_space({"learning_rate": {"min": 0.001, "max": 0.1}}),
    ),
    case(
        "tune-space-empty-range",
        ["tune", "--space", "{space}"],
        "lr has an empty range (min 0.05 >= max 0.001)",
        setup=_space({"lr": {"min": 0.05, "max": 0.001}}),
    ),
    case(
        "tune-space-no-choices",
        ["tune", "--space", "{space}"],
        "batch_size has no choices",
        setup=_space({"batch_size": {"choices": []}}),
    ),
    case(
        "tune-space-bad-choice",
        ["tune", "--space", "{space}"],
        "bad value for init: 'xavier'",
        setup=_space({"init": {"choices": ["paper", "xavier"]}}),
    ),
    case("tune-space-missing-file", ["tune", "--space", "nope.json"], "--space file not found"),
    case(
        "tune-space-nothing-fits",
        ["tune", "--simulate-gtx580", "--space", "{space}", *TINY[:4]],
        "no batch in the search space (2048, 4096) fits the memory budget of 3.00 GiB",
        setup=_space({"batch_size": {"choices": [2048, 4096]}}),
        slow=True,
    ),
    case("tune-budget-bad-unit", ["tune", "--budget-2012", "2 fortnights"], "cannot read the duration '2 fortnights'"),
    case("tune-budget-zero", ["tune", "--budget-2012", "0 h"], "cannot read the duration '0 h'"),
    case("tune-unknown-tuner", ["tune", "--tuner", "grid"], "'grid' is not one of"),
    case("ablate-unknown-arm", ["ablate", "--only", "lrn,batchnorm"], "unknown ablation 'batchnorm'"),
    case("ablate-owt", ["ablate", "--variant", "owt", "--only", "lrn"], "lrn change the 2012 network"),
    case("ablate-zero-seeds", ["ablate", "--seeds", "0"], "--seeds"),
]
