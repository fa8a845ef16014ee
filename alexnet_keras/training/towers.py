"""`--parallel towers`: the paper's two-GPU model split, on the JAX backend.

Krizhevsky et al. (2012) §3.2 put half of every layer's kernels on each GTX 580
(split along output channels) and let the cards talk only at certain layers:

* conv1 (48 kernels per card, each reading the whole image), lrn1 and pool1 per half;
* conv2, lrn2, pool2, conv4, conv5 and pool5 read only their own card's maps;
* conv3, fc6, fc7 and fc8 read both halves (the exchanges);
* both cards see all 128 images (batch replicated, kernels and channels sharded).

`distribution(variant)` is that layout as a `keras.distribution.ModelParallel` on a
mesh `("batch", "model")` of shape `(devices // 2, 2)`: each `"model"` pair holds one
copy of the network, half per device. With more than two devices the pairs train
data parallel (the batch is split across pairs, replicated within a pair).

XLA's SPMD partitioner alone does not keep the towers local: given only the kernel
layouts it gathers the conv2/4/5 kernels and the maps inside the towers (issue 9:
20 all-gathers and 6 all-reduces). So the tower layers run their towers explicitly
per device: `TowerParallel.run_towers` is a `jax.shard_map` over `"model"` that
`alexnet_keras.layers.tower_conv.per_tower` calls (conv2/4/5 and lrn1/2), and the
tower layers' outputs are pinned to the channel-sharded layout. conv1 and the pools
need no hook: with a replicated input and output-sharded kernels they are local.
`collectives_by_layer` counts what is left in the compiled train step: on two
devices, conv3, flatten (fc6's input), fc6, fc7 and fc8 (softmax over both halves),
the loss and the metrics; nothing in conv1-pool2, conv4, conv5 or pool5
(tests/test_towers.py). With pairs, the batch axis adds the data-parallel gradient sums.

`owt` (torchvision's one-tower layout) has no towers and is refused. Of AlexNet's
ablation switches, `remove_conv` keeps both towers and runs here (the left-out
layer's layouts go unused; without conv3 the towers first meet at fc6), and
`towers=1`, the one-GPU net, has nothing to split: `AlexNet` refuses to build it
under a `TowerParallel` (a `UserError`, a `ValueError`). The rest change no layout.
This module imports JAX inside its functions, so the package loads without it.
"""

import collections
import re

import keras

from ..errors import UserError

TOWERS = 2  # the paper's two GTX 580s
BATCH_AXIS = "batch"
MODEL_AXIS = "model"
# The paper's layers, by whether the two cards exchange data there.
TOWER_LAYERS = ("conv1", "relu1", "lrn1", "pool1", "conv2", "lrn2", "cnorm2", "pool2", "conv4", "conv5", "pool5")
EXCHANGE_LAYERS = ("conv3", "fc6", "fc7", "fc8")
_CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")
_DENSES = ("fc6", "fc7", "fc8")
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "collective-permute", "all-to-all")


class TowerParallel(keras.distribution.ModelParallel):
    """`ModelParallel` whose tower layers run one tower per `"model"` device (`run_towers`)."""

    towers = TOWERS

    def run_towers(self, fn, inputs, weights, axis=-1):
        """`fn(x, *w)` on each device's own channel half of `inputs` and of each weight, as one `jax.shard_map`.

        `inputs` are split along `axis`, weights along their last axis (output
        channels). Only `"model"` is manual: the batch axis stays with the
        partitioner, which sums kernel gradients across pairs when there are several
        (a manual batch axis leaves a no-op all-reduce even with one pair).
        """
        import jax
        from jax.sharding import PartitionSpec

        def spec(rank, channel_axis):
            names = [None] * rank
            names[channel_axis % rank] = MODEL_AXIS
            return PartitionSpec(*names)

        mapped = jax.shard_map(
            fn,
            mesh=self.device_mesh.backend_mesh,
            in_specs=(spec(len(inputs.shape), axis), *(spec(len(w.shape), -1) for w in weights)),
            out_specs=spec(len(inputs.shape), axis),
            axis_names={MODEL_AXIS},
        )
        return mapped(inputs, *(keras.ops.convert_to_tensor(w) for w in weights))  # variables to arrays


def _refuse_variant(variant):
    if str(variant) == "owt":
        raise UserError(
            "--parallel towers needs the 2012 network: owt (torchvision's layout) has no towers. "
            "Use --variant 2012, or --parallel data for owt."
        )


def _pairs(count):
    if count < TOWERS or count % TOWERS:
        raise UserError(
            f"--parallel towers needs an even number of devices (one tower each, in pairs); found {count}. "
            "On CPU set XLA_FLAGS=--xla_force_host_platform_device_count=2."
        )
    return count // TOWERS


def layout_map(device_mesh, variant="2012"):
    """The paper's layout: every kernel and bias halved along output channels; tower maps channel-sharded."""
    layouts = keras.distribution.LayoutMap(device_mesh)
    for name in _CONVS:
        layouts[rf"(^|/){name}/kernel$"] = (None, None, None, MODEL_AXIS)
        layouts[rf"(^|/){name}/bias$"] = (MODEL_AXIS,)
    for name in _DENSES:
        layouts[rf"(^|/){name}/kernel$"] = (None, MODEL_AXIS)
        layouts[rf"(^|/){name}/bias$"] = (MODEL_AXIS,)
    # Maps stay on their own card: each device keeps the channels its kernels made.
    for name in (*TOWER_LAYERS, "conv3"):
        layouts[rf"(^|/){name}/output$"] = (BATCH_AXIS, None, None, MODEL_AXIS)
    return layouts


def distribution(variant, devices=None, explicit=True):
    """The paper's two-GPU split as a `keras.distribution.Distribution` (JAX only).

    Args:
        variant: `"2012"`; `"owt"` has no towers (`UserError`).
        devices: the devices (JAX devices or Keras names such as `"cpu:0"`);
            default: every device `keras.distribution.list_devices()` gives. An even
            number: two hold one network, more train data parallel in pairs.
        explicit: `False` leaves the towers to XLA's partitioner (the kernel and map
            layouts only, no per-device tower hook). For comparisons: it gathers
            inside the towers.

    Raises:
        UserError: owt, an odd device count or fewer than 2, or a backend other than JAX.
    """
    _refuse_variant(variant)
    if devices is not None:
        _pairs(len(devices))
    if keras.backend.backend() != "jax":
        raise UserError(
            f"--parallel towers runs on the JAX backend; KERAS_BACKEND is {keras.backend.backend()!r}. "
            "Set KERAS_BACKEND=jax."
        )
    devices = list(keras.distribution.list_devices() if devices is None else devices)
    pairs = _pairs(len(devices))
    mesh = keras.distribution.DeviceMesh((pairs, TOWERS), (BATCH_AXIS, MODEL_AXIS), devices)
    kind = TowerParallel if explicit else keras.distribution.ModelParallel
    return kind(layout_map=layout_map(mesh, variant), batch_dim_name=BATCH_AXIS)


def train_step_hlo(model, x, y):
    """The compiled HLO text of `model`'s Keras train step on one batch, as `fit` compiles it.

    Call with the distribution active (the model built under it). Uses the JAX
    trainer's `train_step` and state shardings, as `make_train_function` does.
    """
    import jax

    dist = keras.distribution.distribution()

    def place(array):
        if dist is None:
            return array
        return jax.device_put(array, dist.get_data_layout(array.shape).backend_layout)

    model._symbolic_build(data_batch=(x, y))  # the compiled metrics' variables, as fit builds them first
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    out_shardings = None if dist is None else (None, model._get_state_sharding_spec())
    step = jax.jit(model.train_step, out_shardings=out_shardings)
    return step.lower(state, (place(x), place(y))).compile().as_text()


_INSTRUCTION = re.compile(r"=\s*\S.*?\s(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_WRAPPER = re.compile(r"^[\w.-]+\((.*)\)$")  # jvp(conv2), transpose(jvp(conv2)), ...


def _layers_of(op_name):
    """The first name scope below the jitted function: `jit(train_step)/transpose(jvp(conv2))/conv` -> {conv2}.

    XLA writes a combined instruction's names as `jit(f)/(a/x:b/y)`: each of a, b.
    """
    head, _, rest = op_name.partition("/")
    if not head.startswith(("jit(", "pjit(")):
        rest = op_name
    names = rest[1:-1].split(":") if rest.startswith("(") and rest.endswith(")") else [rest]
    layers = set()
    for name in names:
        scope = name.split("/")[0]
        while match := _WRAPPER.match(scope):
            scope = match.group(1)
        layers.add(scope or "(unattributed)")
    return layers


def collectives_by_layer(hlo_text):
    """`{layer: {op: count}}` for the collectives in compiled HLO text.

    Counts all-gather, all-reduce, reduce-scatter, collective-permute and all-to-all
    (an async `-start`/`-done` pair counts once), attributed through each
    instruction's `op_name` metadata to its first name scope: the Keras layer
    (`conv3`, `fc8`...), `compile_loss`, the optimizer, or `(unattributed)`.
    An instruction XLA combined from several layers counts once in each.
    """
    counts = collections.defaultdict(collections.Counter)
    for line in hlo_text.splitlines():
        match = _INSTRUCTION.search(line.split(", metadata=")[0])
        if match is None:
            continue
        name = _OP_NAME.search(line)
        for layer in _layers_of(name.group(1)) if name else ("(unattributed)",):
            counts[layer][match.group(1)] += 1
    return {layer: dict(ops) for layer, ops in counts.items()}


def count_collectives(hlo_text):
    """`{op: count}` of the collective instructions in compiled HLO text (each counted once)."""
    return dict(collections.Counter(m.group(1) for m in map(_INSTRUCTION.search, _heads(hlo_text)) if m))


def _heads(hlo_text):
    return (line.split(", metadata=")[0] for line in hlo_text.splitlines())


def format_table(counts, layers=(), total=None):
    """The per-layer table: `layers` first (zeros shown), then any other layer, then `total` if given."""
    names = list(layers) + sorted(set(counts) - set(layers))
    rows = [f"{'layer':<16}" + "".join(f"{op:>20}" for op in COLLECTIVES)]
    for layer, ops in [(name, counts.get(name, {})) for name in names] + ([("total", total)] if total else []):
        rows.append(f"{layer:<16}" + "".join(f"{ops.get(op, 0):>20}" for op in COLLECTIVES))
    return "\n".join(rows)
