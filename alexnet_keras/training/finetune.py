"""Training on your own images: start from a model's weights (`--init-from`), and split a plain folder.

`--init-from SOURCE` starts `train` from a `.keras` model (safe mode), a torchvision
`.pth` state dict (read with `weights_only=True`), an `.npz` of ours, or `imagenet`
(torchvision's IMAGENET1K_V1, fetched and hash-checked as `AlexNet("owt",
weights="imagenet")` does). conv1 to fc7 take the source's weights; fc8 is new, drawn
by the run's init scheme, with one output per class of the data, labelled with the
folder's class names. The variant, the AlexNet options of a `.keras` source and the
preprocessing follow the source unless a flag overrides them, and the lr defaults to
`FINETUNE_LR` (printed in the config like every field).

`--freeze features|none|up-to:LAYER` sets `trainable = False` on conv1 to conv5 or on
conv1 to LAYER before the optimizer is built, so the optimizer holds no slots for them
and weight decay never touches them. The spec is saved in `config.json`, so a resumed
run rebuilds the same trainable set, and each saved `.keras` records its layers'
`trainable` flags.

A folder with only `<class>/` sub-folders is split by `data.folders.auto_split`
(`--val-split`, default `DEFAULT_VAL_SPLIT`, seeded by `split_seed`, else `--seed`); the split is written
to the run directory as `split.json`, which resume reuses and `evaluate --data
RUN/split.json` scores.
"""

import dataclasses
import os

from ..constants import DEFAULT_PREPROCESSING, DEFAULT_VAL_SPLIT, FINETUNE_LAYERS, FINETUNE_LR, SPLIT_FILE
from ..errors import UserError
from ..preprocessing import get_spec
from ..weights.checks import weights_format
from ..weights.io import assign_weights, load_keras
from ..weights.npz import read_npz
from ..weights.torchvision import (
    TORCHVISION_DROPOUT,
    fetch_torchvision_weights,
    load_torchvision_state_dict,
    torchvision_to_keras,
)
from .config import TrainConfig, frozen_layers

IMAGENET_SOURCE = "imagenet"
SOURCE_HELP = "give a .keras, .pth or .npz file, or 'imagenet'"
# The AlexNet options a .keras source records; they follow the source unless given.
_ARCH_FIELDS = ("dropout", "dropout_rate", "fidelity", "lrn_convention", "conv1_order", "spatial_norm2", "tower_impl")


@dataclasses.dataclass
class Source:
    """The weights a fine-tuning run starts from."""

    name: str  # what --init-from said, for messages
    variant: str
    layers: dict  # {layer: [kernel, bias]} for conv1 to fc7
    dropout: tuple | None  # the (mode, rate) the weights were trained with, when the file says
    spec: dict  # the preprocessing those weights expect
    arch: dict = dataclasses.field(default_factory=dict)  # a .keras source's AlexNet options


def read_source(init_from):
    """The `Source` `--init-from` names; `UserError` (one line) for a missing, unsafe or unsuitable file."""
    if init_from == IMAGENET_SOURCE:
        path = fetch_torchvision_weights()  # cached after the first download; offline: one line
        return _torchvision_source(path, f"{IMAGENET_SOURCE} ({path.name})")
    path = os.path.expanduser(init_from)
    if os.path.isdir(path):
        raise UserError(f"--init-from {init_from} is a directory: {SOURCE_HELP}")
    if not os.path.isfile(path):
        raise UserError(f"--init-from {init_from}: file not found ({SOURCE_HELP})")
    try:
        kind = weights_format(path)
    except UserError:
        raise UserError(f"--init-from {init_from}: unknown format ({SOURCE_HELP})") from None
    if kind == ".pth":
        return _torchvision_source(path, init_from)
    if kind == ".npz":
        layers, meta = read_npz(path)
        if "variant" not in meta:
            raise UserError(
                f"--init-from {init_from} does not say which AlexNet variant it holds (write it with export_npz)"
            )
        return _checked(Source(init_from, meta["variant"], layers, meta.get("dropout"), _default_spec(meta["variant"])))
    if kind == ".keras":
        return _keras_source(path, init_from)
    raise UserError(f"--init-from {init_from} holds weights but no architecture: {SOURCE_HELP}")


def _default_spec(variant):
    return get_spec(DEFAULT_PREPROCESSING[variant])


def _torchvision_source(path, name):
    layers = torchvision_to_keras(load_torchvision_state_dict(path))
    return _checked(Source(name, "owt", layers, TORCHVISION_DROPOUT, _default_spec("owt")))


def _keras_source(path, name):
    from ..models import AlexNet

    model = load_keras(path)  # safe mode: a file with code (a Lambda layer...) is refused
    if not isinstance(model, AlexNet):
        raise UserError(f"--init-from {name} holds a {type(model).__name__}, not an AlexNet of this package")
    layers = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    arch = {**{f: getattr(model, f) for f in _ARCH_FIELDS}, **TrainConfig.switch_fields(model)}
    dropout = (model.dropout, model.dropout_rate) if model.include_top else None
    return _checked(Source(name, model.variant, layers, dropout, model.preprocessing, arch))


def _checked(source):
    """The source with conv1 to fc7 only; `UserError` when it lacks one of them."""
    missing = [name for name in FINETUNE_LAYERS if name not in source.layers]
    if missing:
        raise UserError(
            f"--init-from {source.name} has no weights for {', '.join(missing)}: fine-tuning needs an AlexNet's "
            "conv1 to fc7 (fc8 is replaced)"
        )
    source.layers = {name: source.layers[name] for name in FINETUNE_LAYERS}
    return source


def resolve(config, source, given):
    """The config of a new fine-tuning run: the variant, the AlexNet options and the lr follow
    the source and `FINETUNE_LR` unless `given` (the fields set on purpose) names them."""
    check(config, source, given)
    changes = {"variant": source.variant}
    changes.update({f: v for f, v in source.arch.items() if f not in given})
    if "lr" not in given:
        changes["lr"] = FINETUNE_LR
    return dataclasses.replace(config, **changes).validate()


def check(config, source, given=("variant",)):
    """`UserError` when the config's variant cannot take the source's weights."""
    if "variant" in given and config.variant != source.variant:
        raise UserError(
            f"--variant {config.variant} cannot start from --init-from {source.name}: it holds an AlexNet "
            f"{source.variant}; leave out --variant (it follows the source)"
        )


def source_spec(config, source):
    """The preprocessing of a fine-tuning run: the source's, unless `--mean image` asks for the data's mean image."""
    if source is None or config.mean == "image":
        return None
    return source.spec


def prepare(config, run, resume, given):
    """`(config, source, split)` for `train`: the `--init-from` source (or None) and a folder's auto split.

    A new run's config takes the source's variant, options and the fine-tuning lr
    (`resolve`); a resumed run keeps its saved config and only checks the source fits.
    """
    source = None
    if config.init_from is not None:
        source = read_source(config.init_from)
        if resume:
            check(config, source)
        else:
            config = resolve(config, source, set(given))
    split = folder_split(config, run)
    if split is not None:
        config = dataclasses.replace(config, val_split=split.fraction)
    return config, source, split


def start_from(model, source, freeze_spec):
    """Turns a freshly built model into a fine-tuning start: the source's conv1 to fc7, its own new fc8, frozen layers set.

    Call it right after `build_model` (inside the devices' scope), then build the optimizer.
    """
    head = model.get_layer("fc8")
    fresh = head.get_weights()
    # assign_weights rescales the kernels after a dropout layer when the conventions differ; fc8 stays as drawn.
    assign_weights(model, {**source.layers, "fc8": fresh}, source.name, source.dropout)
    head.set_weights(fresh)
    freeze(model, freeze_spec)
    return model


def freeze(model, spec):
    """Sets `trainable = False` on the layers `--freeze spec` names (before the optimizer is built)."""
    for name in frozen_layers(spec):
        model.get_layer(name).trainable = False
    return model


def describe(config, source):
    """One line for the run's output."""
    frozen = frozen_layers(config.freeze)
    kept = f"{frozen[0]}-{frozen[-1]} frozen" if frozen else "every layer trains"
    return f"fine-tuning from {source.name} (AlexNet {source.variant}): fc8 new, {kept}, lr {config.lr:g}"


# --- a folder of class folders -----------------------------------------------------------
def folder_split(config, run):
    """The split of a folder without train/ and val/: the run's `split.json` if recorded, else a new one.

    `run` None: a new one, not looking for a recorded one.

    None for synthetic, TFDS and train/+val/ folders (where `--val-split` is refused).
    """
    from ..data import folders

    data = config.data
    flag = "--val-split" if config.val_split is not None else "split_seed" if config.split_seed is not None else None
    if data == "synthetic" or data.startswith("tfds:"):
        if flag:
            raise UserError(f"{flag} splits a folder of class folders; --data {data} has its own validation set")
        return None
    recorded = None if run is None else run / SPLIT_FILE
    if recorded is not None and recorded.exists():
        return folders.read_split(recorded)
    if not os.path.isdir(data):
        return None  # the loader says what is wrong
    if folders.has_split_folders(data):
        if flag:
            raise UserError(
                f"{flag} splits a folder of class folders; {data} has train/ and val/ already (leave it out)"
            )
        return None
    seed = config.seed if config.split_seed is None else config.split_seed
    return folders.auto_split(data, config.val_split or DEFAULT_VAL_SPLIT, seed)


def load_split(split, spec, config, colour_noise=True):
    """`data.load` for a `FolderSplit`: `(train_ds, val_ds, info)`."""
    from ..data import folders
    from ..data.transforms import without_colour_noise

    spec = get_spec(spec) if colour_noise else without_colour_noise(spec)
    return folders.load_split(split, spec, batch_size=config.batch_size, seed=config.seed)


def split_train_images(split):
    from ..data import folders

    return folders.split_train_images(split)


def record_split(run, split):
    """Writes `split.json` once (atomically), so resume and evaluate use the same split."""
    if split is not None and run.chief and not (run / SPLIT_FILE).exists():
        run.write_json(SPLIT_FILE, split.record())
