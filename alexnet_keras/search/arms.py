"""The arms of `alexnet-keras ablate`: each of the paper's ablations as a `TrainConfig` change.

Plain Python (no Keras), so the CLI checks `--only` before a backend starts.

>>> parse_only("pool,lrn")
['baseline', 'pool', 'lrn']
"""

from ..errors import UserError

# The arms: id -> the TrainConfig change that ablates it. depth's layer is our choice ([P] §7: "any of the middle layers").
ARMS = {
    "baseline": {},
    "lrn": {"lrn": False},
    "pool": {"pool": "2/2"},
    "relu": {"activation": "tanh"},
    "dropout": {"dropout_rate": 0.0},
    "pca": {"pca_lighting": False},
    "towers": {"towers": 1},
    "depth_conv3": {"remove_conv": "conv3"},
    "depth_conv4": {"remove_conv": "conv4"},
    "depth_conv5": {"remove_conv": "conv5"},
}


def claim_id(arm):
    return "depth" if arm.startswith("depth_") else arm


def parse_only(only):
    """`--only lrn,pool` -> the arms to run, baseline first; `UserError` for an unknown id."""
    if not only:
        return list(ARMS)
    chosen = [a.strip() for a in only.split(",") if a.strip()]
    unknown = [a for a in chosen if a not in ARMS]
    if unknown or not chosen:
        raise UserError(f"--only: unknown ablation {unknown[0] if unknown else only!r} (choose from {', '.join(ARMS)})")
    return ["baseline", *dict.fromkeys(a for a in chosen if a != "baseline")]


def check_arms(base, arms):
    """The base config, checked with each arm's switch (e.g. `lrn` on `--variant owt` cannot run)."""
    base = base.validate()
    for arm in arms:
        base.update(**ARMS[arm]).validate()
    return base
