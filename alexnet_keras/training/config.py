"""What defines a training run: `TrainConfig`, its validation, and the defaults a run resolves.

Plain Python (no Keras), so the CLI, notebooks and tools can build, check and
read configs without a backend. `TrainConfig.validate` checks every field in one
place; `resolve` fills the data- and variant-dependent defaults; `resumed_config`
says which fields a resumed run may change.

>>> TrainConfig().update(epochs="3", lr="0.02").validate().epochs
3
>>> parse_schedule("step:51,25,79").drops
(25, 51, 79)
"""

import dataclasses
import json
import math
import pathlib

from ..constants import (
    ACTIVATIONS,
    CONV1_ORDERS,
    DEFAULT_DROPOUT,
    DEFAULT_INIT,
    DROPOUT_MODES,
    FIDELITIES,
    FINETUNE_LAYERS,
    FREEZE_MODES,
    INIT_SCHEMES,
    LRN_CONVENTIONS,
    MEAN_MODES,
    PARALLEL_MODES,
    PRECISIONS,
    REMOVABLE_CONVS,
    STRATEGIES,
    TOWER_COUNTS,
    TOWER_IMPLS,
    VARIANTS,
)
from ..errors import UserError
from .schedules import CC145, StepSchedule

SYNTHETIC_DEFAULT_EPOCHS = 1  # synthetic data is a smoke test, not a recipe
PAPER_EPOCHS = 90
PLATEAU_PATIENCE = 5  # the paper gives no number; an epoch count that suits 90 epochs
MAX_LR_DROPS = 3  # [P] §5: "reduced three times prior to termination"
MAX_SEED = 2**32 - 1  # keras.utils.set_random_seed seeds numpy, which takes 32 bits

# The ablation switches (`alexnet-keras ablate`) and the values they take.
ABLATION_FIELDS = ("lrn", "pool", "activation", "towers", "remove_conv", "pca_lighting")
POOLS = ("3/2", "2/2")
# Fields a resumed run may change; every other field keeps the value saved in config.json.
# The processes of this launch: each launch says its own (a resume may run on other hosts).
LAUNCH_FIELDS = ("coordinator", "num_processes", "process_id")
RESUME_MAY_CHANGE = (
    "epochs",
    "lr_schedule",
    "plateau_patience",
    "validation_steps",
    "strategy",
    "simulate_gtx580",
    "parallel",
    "jit_compile",
    "steps_per_execution",
    "tfds_data_dir",
    "tfds_manual_dir",
    "run_dir",
)


# The allowed values of the enumerated fields (constants.py defines them once).
CHOICES = {
    "variant": VARIANTS,
    "init": INIT_SCHEMES,
    "dropout": DROPOUT_MODES,
    "tower_impl": TOWER_IMPLS,
    "strategy": STRATEGIES,
    "fidelity": FIDELITIES,
    "lrn_convention": LRN_CONVENTIONS,
    "conv1_order": CONV1_ORDERS,
    "mean": MEAN_MODES,
    "precision": PRECISIONS,
    "parallel": PARALLEL_MODES,
    "pool": POOLS,
    "activation": ACTIVATIONS,
    "remove_conv": REMOVABLE_CONVS,
}
# Resolved from the variant or fidelity; parallel None: one device, or what --strategy / --simulate-gtx580 give.
_NONE_MEANS_DEFAULT = ("init", "dropout", "lrn_convention", "conv1_order", "parallel", "remove_conv")

# (lowest allowed, whether None is allowed) for integer fields.
_INT_FIELDS = {
    "classes": (2, True),
    "epochs": (1, True),
    "steps_per_epoch": (1, True),
    "validation_steps": (1, True),
    "batch_size": (1, False),
    "plateau_patience": (1, False),
    "seed": (0, False),
    "split_seed": (0, True),
    "steps_per_execution": (1, False),
    "synthetic_classes": (2, False),
    "synthetic_train_examples": (1, True),
    "synthetic_val_examples": (1, True),
    "num_processes": (1, True),
    "process_id": (0, True),
}
# (lowest, whether the lowest is excluded, highest excluded) for float fields; all must be finite.
_FLOAT_FIELDS = {
    "lr": (0.0, True, math.inf),
    "momentum": (0.0, False, 1.0),
    "weight_decay": (0.0, False, math.inf),
    "dropout_rate": (0.0, False, 1.0),
}
_BOOL_FIELDS = ("simulate_gtx580", "jit_compile", "lrn", "pca_lighting")
_PATH_FIELDS = ("tfds_data_dir", "tfds_manual_dir", "run_dir", "init_from")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run. Printed at the start, saved as `config.json`.

    `None` fields are resolved when the run starts (see `resolve`), and the
    resolved values are what `config.json` records. `validate` checks every field.
    """

    variant: str = "2012"
    data: str = "synthetic"
    classes: int | None = None  # default: the data's class count
    epochs: int | None = None  # default: 90 on real data, 1 on synthetic
    steps_per_epoch: int | None = None  # default: one pass over the training set
    validation_steps: int | None = None  # default: the whole validation set
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "paper"  # "paper" (drop on plateau), "step:25,51,79" (from 1-based epoch 25...) or "cc145"
    plateau_patience: int = PLATEAU_PATIENCE
    init: str | None = None  # "paper" | "caffe" | "torch"; default: the variant's
    dropout: str | None = None  # "paper" | "inverted"; default: the variant's
    dropout_rate: float = 0.5
    tower_impl: str = "split"
    fidelity: str = "paper"  # "paper" | "cuda-convnet": every certain [CC] model-145 network difference
    lrn_convention: str | None = None  # "paper" | "cuda-convnet"; default: the fidelity's
    conv1_order: str | None = None  # "paper" | "cuda-convnet"; default: the fidelity's
    spatial_norm2: bool | None = None  # [CC]'s cnorm2 after lrn2; default: the fidelity's
    mean: str = "pixel"  # "pixel" | "image": one pass over the training set computes the mean image
    seed: int = 0
    strategy: str = "auto"
    simulate_gtx580: bool = False
    parallel: str | None = None  # "data" | "towers"; None: one device, or --strategy / --simulate-gtx580's
    precision: str = "float32"  # a dtype policy: "mixed_float16" / "mixed_bfloat16" compute in 16 bits
    jit_compile: bool = False  # off: XLA is slower for this net on TF CPU (benchmarks/RESULTS.md)
    steps_per_execution: int = 1
    synthetic_classes: int = 1000
    synthetic_train_examples: int | None = None
    synthetic_val_examples: int | None = None
    tfds_data_dir: str | None = None
    tfds_manual_dir: str | None = None
    run_dir: str | None = None
    # Several processes (training.multihost); default: Keras' KERAS_DISTRIBUTION_* variables, else one process.
    coordinator: str | None = None  # HOST:PORT of process 0
    num_processes: int | None = None
    process_id: int | None = None
    # Fine-tuning (training.finetune): start from a model's weights with a new fc8 for the data's classes.
    init_from: str | None = None  # a .keras, .pth or .npz file, or "imagenet" (torchvision's weights)
    freeze: str = "none"  # "none", "features" (conv1-conv5) or "up-to:LAYER" (conv1 to LAYER, up to fc7)
    val_split: float | None = None  # a folder without train/ and val/: the share held out per class (default 0.1)
    split_seed: int | None = None  # that split's seed (default: seed), so runs of several seeds share one val set
    # The paper's ablations (`alexnet-keras ablate`); the defaults are the paper's network and data.
    lrn: bool = True  # False: no lrn1, lrn2 (§3.3)
    pool: str = "3/2"  # pool size/stride of pool1, pool2, pool5; "2/2": non-overlapping (§3.4)
    activation: str = "relu"  # "tanh": §3.1's comparison
    towers: int = 2  # 1: the one-GPU net with half the kernels of conv1-conv4 (§3.2)
    remove_conv: str | None = None  # "conv3" | "conv4" | "conv5": one middle conv layer removed (§7)
    pca_lighting: bool = True  # False: no PCA colour noise (§4.1)

    @classmethod
    def field_names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    def update(self, **values):
        """Returns a copy with `values` set, converting strings from `--set key=value`."""
        types = {f.name: f.type for f in dataclasses.fields(self)}
        changes = {}
        for key, value in values.items():
            if key not in types:
                raise UserError(f"unknown config field {key!r}; fields: {', '.join(types)}")
            changes[key] = _coerce(key, value, types[key])
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_file(cls, path):
        """A config from a JSON object of fields, or from a run's `config.json` (`{"config": {...}}`)."""
        return cls().update(**read_config_file(path))

    def as_dict(self):
        return dataclasses.asdict(self)

    def validate(self):
        """Raises `UserError` naming the first field with a value that cannot work; returns self."""
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value is None and name in _NONE_MEANS_DEFAULT:
                continue
            if value not in allowed:
                raise UserError(f"bad value for {name}: {value!r} (choose from {', '.join(allowed)})")
        for name, (low, none_ok) in _INT_FIELDS.items():
            value = getattr(self, name)
            if value is None and none_ok:
                continue
            high = MAX_SEED if name in ("seed", "split_seed") else None
            if type(value) is not int or value < low or (high is not None and value > high):
                span = f"from {low} to {high}" if high is not None else f">= {low}"
                raise UserError(f"bad value for {name}: {value!r} (expected an integer {span})")
        for name, (low, low_open, high) in _FLOAT_FIELDS.items():
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value < low or (low_open and value == low) or value >= high:
                span = f"{'>' if low_open else '>='} {low:g}" + (f" and < {high:g}" if math.isfinite(high) else "")
                raise UserError(f"bad value for {name}: {value!r} (expected a finite number {span})")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"bad value for {name}: {getattr(self, name)!r} (expected true or false)")
        if type(self.towers) is not int or self.towers not in TOWER_COUNTS:
            raise UserError(f"bad value for towers: {self.towers!r} (expected 1 or 2)")
        self._validate_ablations()
        if self.spatial_norm2 not in (None, True, False):
            raise UserError(f"bad value for spatial_norm2: {self.spatial_norm2!r} (expected true, false or none)")
        if self.variant == "owt" and (
            self.fidelity != "paper" or self.conv1_order == "cuda-convnet" or self.spatial_norm2
        ):
            raise UserError("fidelity, conv1_order and spatial_norm2 apply to --variant 2012 only")
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise UserError(f"bad value for {name}: {value!r} (expected a path)")
        if not isinstance(self.data, str) or not self.data:
            raise UserError(f"bad value for data: {self.data!r} (expected 'synthetic', a folder or tfds:NAME)")
        if not isinstance(self.lr_schedule, str):
            raise UserError(
                f"bad value for lr_schedule: {self.lr_schedule!r} (expected 'paper', 'step:E1,E2,...' or 'cc145')"
            )
        parse_schedule(self.lr_schedule)
        self._validate_finetune()
        return self

    def ablated(self):
        """The ablation switches set away from the paper's network, as {field: value}."""
        defaults = TrainConfig()
        return {k: getattr(self, k) for k in ABLATION_FIELDS if getattr(self, k) != getattr(defaults, k)}

    def model_switches(self):
        """The ablation switches as `AlexNet` keyword arguments."""
        size, stride = (int(n) for n in self.pool.split("/"))
        return dict(
            lrn=self.lrn,
            pool=(size, stride),
            activation=self.activation,
            towers=self.towers,
            remove_conv=self.remove_conv,
        )

    @staticmethod
    def switch_fields(model):
        """An `AlexNet`'s ablation switches as `TrainConfig` fields (the reverse of `model_switches`)."""
        size, stride = model.pool
        fields = dict(pool=f"{size}/{stride}", lrn=model.lrn, activation=model.activation, towers=model.towers)
        return {**fields, "remove_conv": model.remove_conv}

    def _validate_ablations(self):
        """The switches change the 2012 network, which `--parallel towers` splits as the paper did."""
        changed = [k for k in self.ablated() if k != "pca_lighting"]
        if changed and self.variant != "2012":
            raise UserError(f"{', '.join(changed)} change the 2012 network; use --variant 2012")
        if changed and self.parallel == "towers":
            raise UserError(f"--parallel towers splits the paper's network; {', '.join(changed)} change it")

    def _validate_finetune(self):
        """The fine-tuning and auto-split fields (training.finetune, data.folders)."""
        if not isinstance(self.freeze, str):
            raise UserError(f"bad value for freeze: {self.freeze!r} (expected none, features or up-to:LAYER)")
        if frozen_layers(self.freeze) and self.init_from is None:
            raise UserError(
                f"--freeze {self.freeze} needs --init-from: frozen layers keep their starting weights, "
                "and without a source those are random"
            )
        v = self.val_split
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v < 1
        ):
            raise UserError(f"bad value for val_split: {v!r} (expected a number > 0 and < 1, e.g. 0.1)")


def frozen_layers(spec):
    """The layers `--freeze spec` keeps fixed, in order; `UserError` for an unknown spec.

    >>> frozen_layers("features"), frozen_layers("up-to:conv2"), frozen_layers("none")
    (('conv1', 'conv2', 'conv3', 'conv4', 'conv5'), ('conv1', 'conv2'), ())
    """
    if spec == "none":
        return ()
    if spec == "features":
        return FINETUNE_LAYERS[:5]
    if isinstance(spec, str) and spec.startswith("up-to:"):
        layer = spec[len("up-to:") :]
        if layer in FINETUNE_LAYERS:
            return FINETUNE_LAYERS[: FINETUNE_LAYERS.index(layer) + 1]
        raise UserError(
            f"bad --freeze {spec!r}: unknown layer {layer!r} (up-to: takes one of {', '.join(FINETUNE_LAYERS)}; "
            "fc8 is replaced and always trains)"
        )
    raise UserError(f"bad --freeze {spec!r}: use {', '.join(FREEZE_MODES)} or up-to:LAYER (e.g. up-to:conv5)")


def read_config_file(path):
    """The fields in a JSON config file, as a dict; `UserError` for anything else."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}" if not path.exists() else f"config file {path} is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(
            f"config file {path} is not UTF-8 text; it must hold a JSON object of TrainConfig fields"
        ) from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"config file {path} is not valid JSON: {e}") from None
    if isinstance(values, dict) and "config" in values:
        values = values["config"]
    if not isinstance(values, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(values), "a number")
        raise UserError(
            f"config file {path} holds {kind}; it must hold a JSON object of TrainConfig fields, "
            'e.g. {"batch_size": 64}'
        )
    return values


_EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false"}


def _coerce(key, value, annotation):
    if not isinstance(value, str) or annotation in ("str", "str | None"):
        return value
    if value.lower() in ("none", "null") and "None" in str(annotation):
        return None
    kind = next((k for k in ("bool", "int", "float") if k in str(annotation)), None)
    try:
        if kind == "bool":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise UserError(f"bad value for {key}: {value!r} (expected {_EXPECTED[kind]})") from None
    return value


def parse_schedule(spec):
    """`"paper"` -> None (drop on plateau); `"step:25,51,79"` or `"cc145"` -> a `StepSchedule`.

    `step:E1,E2,...` divides the lr by 10 from each 1-based epoch Ei on, as [CC]'s
    log means "epoch 25: set epsw to 0.001": epochs 1-24 train at `lr`, 25 on at
    lr/10 (`training.schedules` says how that was read). `cc145` replays model 145's
    log: per-layer rates for conv1 and colour noise off from epoch 67.
    """
    if spec == "paper":
        return None
    if spec == "cc145":
        return CC145
    if spec.startswith("step:"):
        try:
            drops = tuple(sorted(int(b) for b in spec[5:].split(",")))
        except ValueError:
            drops = None
        if drops and all(0 < b for b in drops):
            return StepSchedule(drops=drops)
    raise UserError(
        f"bad --lr-schedule {spec!r}: use 'paper', 'cc145' or 'step:E1,E2,...' (1-based epochs from "
        "which the lr is divided by 10, e.g. step:25,51,79)"
    )


def resolve(config, info):
    """Fills the config's data- and variant-dependent defaults, as config.json records them."""
    changes = {}
    if config.classes is None:
        changes["classes"] = info.classes
    elif config.classes != info.classes:
        raise UserError(f"--classes {config.classes} does not match the data's {info.classes} classes")
    if config.epochs is None:
        changes["epochs"] = SYNTHETIC_DEFAULT_EPOCHS if info.synthetic else PAPER_EPOCHS
    if config.init is None:
        changes["init"] = DEFAULT_INIT[config.variant]
    if config.dropout is None:
        changes["dropout"] = DEFAULT_DROPOUT[config.variant]
    return dataclasses.replace(config, **changes)


def lr_layers(spec):
    """The layers that the schedule `spec` gives a rate of their own (`PaperSGD(lr_layers=...)`)."""
    schedule = parse_schedule(spec)
    return schedule.lr_layers if schedule is not None else ()


def given_fields(config):
    """The fields that differ from `TrainConfig()`: what a caller set on purpose, by default."""
    defaults = TrainConfig()
    return {f for f in TrainConfig.field_names() if getattr(config, f) != getattr(defaults, f)}


def resumed_config(record, config, given):
    """The saved config with the changes a resume may make; refuses the others."""
    try:
        saved = TrainConfig().update(**record["config"])
    except (UserError, TypeError) as e:
        raise UserError(f"{config.run_dir}/config.json is damaged ({e}); nothing to resume") from None
    changed = {}
    for key in given:
        new, old = getattr(config, key), getattr(saved, key)
        if key == "run_dir" or key in LAUNCH_FIELDS or new is None or new == old:
            continue
        if key not in RESUME_MAY_CHANGE:
            flag = "--" + key.replace("_", "-")
            raise UserError(
                f"{flag} {new} conflicts with this run's saved {key} {old}; a resumed run keeps it "
                "(leave the flag out, or start a new --run-dir)"
            )
        if key == "lr_schedule" and lr_layers(new) != lr_layers(old):
            raise UserError(
                f"--lr-schedule {new} conflicts with this run's saved lr_schedule {old}: their optimizers "
                "hold different per-layer rates, so a resumed run cannot switch; start a new --run-dir"
            )
        changed[key] = [old, new]
    # Where this launch runs (LAUNCH_FIELDS) is never taken from the saved run: another cluster may resume it.
    here = {k: getattr(config, k) for k in LAUNCH_FIELDS}
    saved = dataclasses.replace(saved, **{k: v[1] for k, v in changed.items()}, run_dir=config.run_dir, **here)
    return saved, changed
