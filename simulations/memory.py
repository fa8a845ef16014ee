"""Training-memory plan: will a batch fit on one replica (a 3 GB GTX 580 by default)?

Per replica the estimate is

    weights + gradients + optimizer slots (SGD momentum: 1)
    + activations kept for backprop x per-replica batch
    + backprop transients x per-replica batch
    + workspace (+ one gradient copy for the all-reduce when replicas > 1)

What TensorFlow keeps for the backward pass, per layer type (per image):

* a layer's output, once: conv and dense ReLUs keep only their output (ReLU's
  gradient needs y, BiasAdd's none), max-pooling its output (its input is the
  previous layer's output, already counted); the input batch itself counts too.
* `Flatten` and `Reshape`: nothing (a view of the previous tensor).
* `LocalResponseNormalization` (`x * (k + alpha * window) ** -beta`): 3x the output,
  since the gradient keeps the base and its power besides the output.
* dropout: 2x (the output and the float keep-mask the product's gradient needs).
* `GroupedConv2D` ("split" towers): the output plus a copy of its input, since the
  per-tower channel slices are new tensors the filter gradient keeps.

Transients: gradients of the largest layer's output and input are alive
together, 2 x the largest activation per image. Workspace: the optimizer update
makes temporaries the size of the largest layer's parameters (fc6, 144 MiB):
4 for the project's `PaperSGD` (`decay * w`, `g + decay * w`, `m * momentum`,
`lr * g`), 2 for Keras' `SGD(momentum=0.9)`. Calibrated on TF 2.21 CPU with
`tf.config.experimental.get_memory_info("CPU:0")["peak"]` around `train_on_batch`
(tests/test_simulations.py, benchmarks/cpu.py): the worst case recorded in
benchmarks/RESULTS.md is 16% over the measured peak (2012, batch 128); the peak
itself moves by about 10% from step to step, so the test and the benchmark allow
`CALIBRATION_TOLERANCE`. The all-reduce copy is an assumption (one CPU here
cannot measure MirroredStrategy on two GPUs).

Parameters use `bytes_per_value`; activations are taken as the rows give them
(`profile_model` counts float32).

`why_two_gpus` is a second model: what the 2012 cuda-convnet code held per card
for model 145 (every layer's output and gradient matrix, norm denominators,
conv partial sums, double-buffered input, ...), one card against the paper's
two-card split, each assumption a named term (`CC2012Assumptions`).

Example:
>>> rows = [{"name": "fc", "kind": "Dense", "params": 1000, "activation_bytes": 40}]
>>> p = plan(rows, batch_size=10)
>>> p.weights_bytes, p.activations_bytes
(4000, 400)
"""

from dataclasses import dataclass, field

from ..constants import GTX580_MEMORY_BYTES
from ..errors import UserError

GIB = 2**30

# Multiples of a layer's output kept for backprop, by layer class name (see above).
KEPT_FACTOR = {
    "Flatten": 0,
    "Reshape": 0,
    "LocalResponseNormalization": 3,
    "TowerLocalResponseNormalization": 3,  # the same LRN, each tower's channels on their own
    "AlexNetDropout": 2,
    "Dropout": 2,
}
# Layers whose input is copied (and kept) on top of their output.
KEEPS_INPUT_COPY = ("GroupedConv2D",)
TRANSIENT_FACTOR = 2  # gradient tensors of the largest layer alive at once
# Update temporaries the size of the largest layer's parameters, per optimizer.
UPDATE_TEMPORARIES = {"paper_sgd": 4, "sgd": 2}
# How far `plan` may be from TF's measured peak (relative): the test's and the benchmark's bound.
CALIBRATION_TOLERANCE = 0.25


def _row(layer):
    """A layer description as a dict: `LayerProfile`, dict or any object with the fields."""
    if hasattr(layer, "as_dict"):
        return layer.as_dict()
    if isinstance(layer, dict):
        return dict(layer)
    return {k: getattr(layer, k) for k in ("name", "kind", "params", "activation_bytes") if hasattr(layer, k)}


@dataclass
class Plan:
    """A per-replica memory estimate. All sizes are bytes per replica."""

    batch_size: int
    replicas: int
    per_replica_batch: int
    budget_bytes: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    transient_bytes: int
    workspace_bytes: int
    allreduce_bytes: int
    per_image_bytes: int
    fixed_bytes: int
    layers: list = field(default_factory=list)

    @property
    def total_bytes(self):
        return (
            self.weights_bytes
            + self.gradients_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.transient_bytes
            + self.workspace_bytes
            + self.allreduce_bytes
        )

    @property
    def fits(self):
        return self.total_bytes <= self.budget_bytes

    @property
    def max_per_replica_batch(self):
        """The largest per-replica batch within the budget (0 if not even one image fits)."""
        spare = self.budget_bytes - self.fixed_bytes
        return max(0, spare // self.per_image_bytes) if self.per_image_bytes else None

    def verdict(self):
        word = "fits" if self.fits else "does not fit"
        return (
            f"{word}: {_gib(self.total_bytes)} per replica of a {_gib(self.budget_bytes)} budget "
            f"(batch {self.batch_size} = {self.replicas} x {self.per_replica_batch})"
        )

    def as_dict(self):
        return {
            "batch_size": self.batch_size,
            "replicas": self.replicas,
            "per_replica_batch": self.per_replica_batch,
            "budget_bytes": self.budget_bytes,
            "per_replica_bytes": {
                "weights": self.weights_bytes,
                "gradients": self.gradients_bytes,
                "optimizer": self.optimizer_bytes,
                "activations": self.activations_bytes,
                "backprop_transients": self.transient_bytes,
                "workspace": self.workspace_bytes,
                "allreduce": self.allreduce_bytes,
                "total": self.total_bytes,
            },
            "per_image_bytes": self.per_image_bytes,
            "max_per_replica_batch": self.max_per_replica_batch,
            "fits": self.fits,
            "layers": self.layers,
        }


def plan(
    layers,
    batch_size,
    replicas=1,
    budget_bytes=GTX580_MEMORY_BYTES,
    bytes_per_value=4,
    optimizer_slots=1,
    update_temporaries=UPDATE_TEMPORARIES["paper_sgd"],
):
    """Estimates training memory per replica.

    Args:
        layers: rows with at least `name`, `params` and `activation_bytes` (per
            image), in network order; `kind` (the layer class name) refines what
            is kept. `alexnet_keras.profile.profile_model(model)` gives them.
        batch_size: the global batch.
        replicas: data-parallel replicas; each holds all weights and
            `batch_size / replicas` images.
        budget_bytes: memory of one replica's device (3 GiB: a GTX 580 3 GB).
        bytes_per_value: bytes per parameter value (4 for float32).
        optimizer_slots: per-parameter optimizer state (SGD momentum: 1, Adam: 2).
        update_temporaries: temporaries of the update step, in units of the largest
            layer's parameters: 4 for `PaperSGD` (the default; what `train` uses),
            2 for `keras.optimizers.SGD` with momentum.

    Returns:
        a `Plan`.

    Example:
    >>> plan([{"name": "a", "params": 10, "activation_bytes": 8}], 4, replicas=2).per_replica_batch
    2
    """
    batch_size, replicas = int(batch_size), int(replicas)
    if batch_size < 1 or replicas < 1:
        raise UserError(f"batch size and replicas must be positive, got {batch_size} and {replicas}")
    if batch_size % replicas:
        raise UserError(f"batch size {batch_size} does not split evenly over {replicas} replicas")
    rows = [_row(layer) for layer in layers]
    if not rows:
        raise UserError("no layers to plan")
    per_replica = batch_size // replicas

    detail, previous = [], 0
    for r in rows:
        out = int(r["activation_bytes"])
        kind = r.get("kind", "")
        kept = KEPT_FACTOR.get(kind, 1) * out + (previous if kind in KEEPS_INPUT_COPY else 0)
        detail.append({**r, "kept_bytes": kept})
        previous = out

    params = sum(int(r["params"]) for r in rows)
    weights = params * bytes_per_value
    largest_params = max(int(r["params"]) for r in rows) * bytes_per_value
    kept_per_image = sum(d["kept_bytes"] for d in detail)
    transient_per_image = TRANSIENT_FACTOR * max(int(r["activation_bytes"]) for r in rows)
    workspace = update_temporaries * largest_params
    allreduce = weights if replicas > 1 else 0
    fixed = weights * (2 + optimizer_slots) + workspace + allreduce
    return Plan(
        batch_size=batch_size,
        replicas=replicas,
        per_replica_batch=per_replica,
        budget_bytes=int(budget_bytes),
        weights_bytes=weights,
        gradients_bytes=weights,
        optimizer_bytes=weights * optimizer_slots,
        activations_bytes=kept_per_image * per_replica,
        transient_bytes=transient_per_image * per_replica,
        workspace_bytes=workspace,
        allreduce_bytes=allreduce,
        per_image_bytes=kept_per_image + transient_per_image,
        fixed_bytes=fixed,
        layers=detail,
    )


def check_fits(layers, batch_size, replicas=1, budget_bytes=GTX580_MEMORY_BYTES, **kwargs):
    """`plan(...)`, raising `alexnet_keras.errors.UserError` (one line) if it does not fit.

    Returns:
        the `Plan` when it fits.

    Example:
    >>> check_fits([{"name": "a", "params": 10, "activation_bytes": 8}], 2).fits
    True
    """
    p = plan(layers, batch_size, replicas=replicas, budget_bytes=budget_bytes, **kwargs)
    if not p.fits:
        raise UserError(fit_error(p))
    return p


def fit_error(p):
    """Why the `Plan` p does not fit, in one line (what `check_fits` raises)."""
    return (
        f"batch {p.batch_size} does not fit: {_gib(p.total_bytes)} per replica "
        f"({p.replicas} x {p.per_replica_batch} images) > {_gib(p.budget_bytes)}; "
        f"the largest batch that fits is about {p.max_per_replica_batch * p.replicas}"
    )


def _gib(n):
    return f"{n / GIB:.2f} GiB"


def _mib(n):
    return f"{n / 2**20:,.1f} MiB"


def format_plan(p):
    """The plan as text: one row per layer, then the per-replica budget lines."""
    header = f"{'layer':<10} {'type':<27} {'output':<12} {'params':>12} {'FLOPs':>15} {'act/img':>11} {'kept/img':>11}"
    lines = [header, "-" * len(header)]
    for d in p.layers:
        shape = "x".join(str(s) for s in d.get("output_shape", ()) or ())
        flops = d.get("flops", 2 * d["macs"] if "macs" in d else None)
        flops = f"{flops:,}" if flops is not None else "-"
        lines.append(
            f"{d['name']:<10} {d.get('kind', ''):<27} {shape:<12} {int(d['params']):>12,} {flops:>15} "
            f"{int(d['activation_bytes']):>11,} {d['kept_bytes']:>11,}"
        )
    lines.append("-" * len(header))
    lines.append(f"training memory per replica ({p.replicas} replica(s), {p.per_replica_batch} images each, float32):")
    lines += _memory_lines(
        p,
        (
            ("weights", p.weights_bytes),
            ("gradients", p.gradients_bytes),
            ("optimizer slots", p.optimizer_bytes),
            ("activations kept for backprop", p.activations_bytes),
            ("backprop transients", p.transient_bytes),
            ("workspace (optimizer temporaries)", p.workspace_bytes),
            ("all-reduce buffer", p.allreduce_bytes),
        ),
    )
    return "\n".join(lines)


def _memory_lines(p, items):
    """A plan's memory terms, its total and budget in MiB, then its verdict (shared by both plans' text)."""
    lines = [f"  {label:<36} {_mib(n):>14}" for label, n in items]
    lines.append(f"  {'total':<36} {_mib(p.total_bytes):>14}")
    lines.append(f"  {'budget':<36} {_mib(p.budget_bytes):>14}")
    lines.append(p.verdict())
    return lines


# --- What cuda-convnet held on a GTX 580 (issue 14 item 6: why two GPUs) -----
#
# `plan()` above is a TensorFlow-style estimate. The model below counts the
# buffers the 2012 code ([CC] = yrmo/AlexNet-Source-Code, read as described in
# docs/cuda-convnet-2012.md) allocates for model 145, layer by layer, and never
# frees during a step. Each assumption is a field of `CC2012Assumptions`; the
# defaults are what the [CC] sources say, except `context_bytes` (an assumption).

MIB = 2**20
# ASSUMPTION, not measured or sourced for a GTX 580 under CUDA 4: what the CUDA
# context (local-memory reservation, loaded kernels, cuBLAS) takes before the first
# cudaMalloc. Modern cards measure a few hundred MiB; Fermi-era contexts were smaller.
CUDA_CONTEXT_BYTES = 100 * MIB
# partialSum of each conv layer: [CC] layers/layers-145.cfg:18,31 (conv1), 75,90 (conv2),
# 144,158 (conv3), 174,188 (conv4), 202,216 (conv5).
PARTIAL_SUM_145 = {"conv1": 5, "conv2": 3, "conv3": 13, "conv4": 13, "conv5": 13}

# (usesActs, usesInputs, forceOwnActs) per [CC] layer type, as layer.py sets them:
# defaults True/True/True (layer.py:203-216); weight layers usesActs=False (layer.py:831);
# pool True/True because `'pool' != 'avg'` compares two literals (layer.py:1146-1147);
# relu neuron True/False, neuron layers forceOwnActs=False (layer.py:1400, 651);
# dropout `hs` False/False/False (layer.py:701-704).
_CC_FLAGS = {
    "data": (True, True, True),
    "conv": (False, True, True),
    "fc": (False, True, True),
    "pool": (True, True, True),
    "cmrnorm": (True, True, True),
    "rnorm": (True, True, True),
    "neuron": (True, False, False),
    "hs": (False, False, False),
    "softmax": (True, True, True),
    "cost": (True, True, True),
}
COMPONENTS_2012 = (
    "weights",
    "weight_gradients",
    "weight_increments",
    "outputs",
    "activation_gradients",
    "norm_denominators",
    "dropout_masks",
    "input_buffers",
    "exchanged_copies",
    "conv_partial_sums",
    "cost_and_test_buffers",
    "cuda_context",
)


@dataclass(frozen=True)
class CCLayer:
    """One layer of a cuda-convnet graph (after `neuron=` layers are detached).

    `outputs` is floats per image; `gpu` -1 marks a data layer, which lives on
    every GPU that reads it. Conv layers carry `modules` (output positions),
    `partial_sum` and `weights_per_input` (filterChannels x filterPixels x filters)
    for their weight-gradient partial sums; a cost layer carries `classes`.
    """

    name: str
    kind: str
    outputs: int
    gpu: int = 0
    inputs: tuple = ()
    params: int = 0
    weights_per_input: int = 0
    modules: int = 0
    partial_sum: int = 0
    classes: int = 0


@dataclass(frozen=True)
class CC2012Assumptions:
    """The named terms of the 2012 model; each default is what [CC] does (see ASSUMPTIONS_2012)."""

    keep_activation_gradients: bool = True
    share_buffers: bool = False
    norm_denominators: bool = True
    dropout_masks: bool = True
    conv_partial_sums: bool = True
    input_double_buffer: bool = True
    context_bytes: int = CUDA_CONTEXT_BYTES
    bytes_per_value: int = 4

    def flipped(self, name):
        """These assumptions with `name` changed to its alternative (context: 0)."""
        from dataclasses import replace

        value = getattr(self, name)
        return replace(self, **{name: (not value) if isinstance(value, bool) else 0})


# What each term means, its source, and what its alternative would mean.
ASSUMPTIONS_2012 = {
    "keep_activation_gradients": (
        "every layer keeps its activation-gradient (actsGrad) matrix for the whole step",
        "[CC] src/layer.cu:112-123 frees them only under --conserve-mem, default 0 (convnet.py:185); "
        "model 145's command line is not in [CC]",
        "--conserve-mem: gradients freed after each layer's backprop; the two largest are counted",
    ),
    "share_buffers": (
        "no layer shares its output or gradient matrix with its input",
        "[CC] layer.py:345: `sum('inputs' in ll ... for ll in layers)` iterates layer names, so the "
        "sharing test is never true; the 2012 public release [CC1] trunk/layer.py:314 iterated dicts and shared",
        "ReLU layers after conv/fc write in place and single-input elementwise layers share the gradient",
    ),
    "norm_denominators": (
        "each rnorm/cmrnorm layer keeps a denominator matrix of its output's size",
        "[CC] src/layer.cu:1569,1589 (_denoms), freed only under conserveMem (1578)",
        "no denominators kept",
    ),
    "dropout_masks": (
        "each dropout (hs) layer keeps a float mask of its output's size",
        "[CC] src/layer.cu:1128-1131 (_sexMask)",
        "no masks kept",
    ),
    "conv_partial_sums": (
        "each conv layer keeps its weight-gradient partial sums, (positions / partialSum) x its filter weights",
        "[CC] src/layer.cu:860-876 (_weightGradTmp); partialSum 5, 3, 13, 13, 13 in layers-145.cfg",
        "partialSum=0: gradients summed straight into the weight gradient",
    ),
    "input_double_buffer": (
        "the data layer holds the current and the next minibatch on every GPU that reads it",
        "[CC] src/layer.cu:1202-1259 (_outputs2, setBuffer) and src/convnet.cu:225-240",
        "one minibatch buffer",
    ),
    "context_bytes": (
        f"{CUDA_CONTEXT_BYTES // MIB} MiB per card for the CUDA context, kernels and cuBLAS",
        "ASSUMPTION: no GTX 580 / CUDA 4 measurement found",
        "no context overhead",
    ),
}


def _layer_table(layers):
    by_name = {}
    for layer in layers:
        if layer.kind not in _CC_FLAGS:
            raise UserError(f"layer {layer.name!r}: unknown cuda-convnet kind {layer.kind!r}")
        by_name[layer.name] = layer
    consumers = {name: [c for c in layers if name in c.inputs] for name in by_name}
    memo = {}

    def grad_consumer(name):  # it, or a layer below it, has weights ([CC] layer.cu isGradConsumer)
        if name not in memo:
            layer = by_name[name]
            memo[name] = layer.kind in ("conv", "fc") or any(grad_consumer(i) for i in layer.inputs)
        return memo[name]

    return by_name, consumers, grad_consumer


def cc_memory_2012(layers, batch_size, assumptions=CC2012Assumptions(), budget_bytes=GTX580_MEMORY_BYTES):
    """What a cuda-convnet graph holds per card during one training step.

    Returns:
        a `CC2012Plan`.

    Example:
    >>> net = [CCLayer("data", "data", 10, gpu=-1), CCLayer("fc", "fc", 5, inputs=("data",), params=55)]
    >>> p = cc_memory_2012(net, 2, CC2012Assumptions(context_bytes=0))
    >>> p.cards[0]["weights"], p.cards[0]["outputs"], p.cards[0]["input_buffers"]
    (220, 40, 160)
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise UserError(f"batch size must be positive, got {batch_size}")
    if not layers:
        raise UserError("no layers to plan")
    a = assumptions
    by_name, consumers, grad_consumer = _layer_table(layers)
    per_image = batch_size * a.bytes_per_value

    acts_shared, grads_shared = set(), set()
    if a.share_buffers:  # the rule [CC] layer.py:338-355 meant to apply
        for layer in layers:
            _, uses_inputs, force_own = _CC_FLAGS[layer.kind]
            for name in () if force_own else layer.inputs:
                inp = by_name[name]
                if inp.outputs == layer.outputs and len(consumers[name]) == 1:
                    if not _CC_FLAGS[inp.kind][0] and not uses_inputs:
                        acts_shared.add(layer.name)
                    if inp.gpu == layer.gpu:
                        grads_shared.add(layer.name)

    gpus = sorted({layer.gpu for layer in layers if layer.gpu >= 0}) or [0]
    cards = {g: dict.fromkeys(COMPONENTS_2012, 0) for g in gpus}
    largest_grads = {g: [] for g in gpus}
    detail, exchanges = [], []
    for layer in layers:
        out = layer.outputs * per_image
        readers = sorted({c.gpu for c in consumers[layer.name]})
        row = {"name": layer.name, "kind": layer.kind, "gpu": layer.gpu, "outputs_per_image": layer.outputs}
        if layer.kind == "data":
            copies = 2 if a.input_double_buffer else 1
            for g in readers:
                cards[g]["input_buffers"] += copies * out
            detail.append({**row, "gpus": readers, "input_bytes_per_card": copies * out})
            continue
        card = cards[layer.gpu]
        weights = layer.params * a.bytes_per_value
        for key in ("weights", "weight_gradients", "weight_increments"):  # [CC] weights.cuh:46
            card[key] += weights
        own_out = 0 if layer.name in acts_shared else out
        card["outputs"] += own_out
        has_grad = grad_consumer(layer.name) and bool(consumers[layer.name]) and out > 0
        grad = out if has_grad and layer.name not in grads_shared else 0
        if a.keep_activation_gradients:
            card["activation_gradients"] += grad
        elif grad:
            largest_grads[layer.gpu].append(grad)
        extra = 0
        if layer.kind in ("cmrnorm", "rnorm") and a.norm_denominators:
            card["norm_denominators"] += out
            extra = out
        if layer.kind == "hs" and a.dropout_masks:
            card["dropout_masks"] += out
            extra = out
        if layer.kind == "conv" and layer.partial_sum and a.conv_partial_sums:
            extra = layer.modules // layer.partial_sum * layer.weights_per_input * a.bytes_per_value
            card["conv_partial_sums"] += extra
        if layer.kind == "cost":  # multiview probs accumulator + correct/top-k vectors (layer.cu:1812-1836)
            extra = (layer.classes + 2) * per_image
            card["cost_and_test_buffers"] += extra
        for g in readers:
            if g == layer.gpu:
                continue
            # [CC] layer.cu:396-405: a copy of the output, and a gradient matrix, on the reader's card
            back = out if has_grad else 0
            cards[g]["exchanged_copies"] += out + (back if a.keep_activation_gradients else 0)
            exchanges.append(
                {"layer": layer.name, "from_gpu": layer.gpu, "to_gpu": g, "forward_bytes": out, "backward_bytes": back}
            )
        detail.append(
            {
                **row,
                "weights_bytes": weights,
                "output_bytes": own_out,
                "gradient_bytes": grad if a.keep_activation_gradients else 0,
                "extra_bytes": extra,
            }
        )
    for g, card in cards.items():
        if not a.keep_activation_gradients:  # --conserve-mem: the incoming and outgoing gradients
            card["activation_gradients"] = sum(sorted(largest_grads[g])[-2:])
        card["cuda_context"] = a.context_bytes
    return CC2012Plan(
        batch_size=batch_size,
        budget_bytes=int(budget_bytes),
        assumptions=a,
        cards=cards,
        layers=detail,
        exchanges=exchanges,
    )


@dataclass
class CC2012Plan:
    """Bytes per card, by component, of a cuda-convnet graph at one batch size."""

    batch_size: int
    budget_bytes: int
    assumptions: CC2012Assumptions
    cards: dict
    layers: list = field(default_factory=list)
    exchanges: list = field(default_factory=list)

    def card_total(self, gpu):
        return sum(self.cards[gpu].values())

    @property
    def fullest_card(self):
        return max(self.cards, key=self.card_total)

    @property
    def total_bytes(self):
        """The fuller card's total (what decides whether the net fits)."""
        return self.card_total(self.fullest_card)

    @property
    def fits(self):
        return self.total_bytes <= self.budget_bytes

    @property
    def exchanged_bytes_per_step(self):
        """Bytes crossing between cards in one step (forward activations + backward gradients)."""
        return sum(e["forward_bytes"] + e["backward_bytes"] for e in self.exchanges)

    def as_dict(self):
        from dataclasses import asdict

        return {
            "batch_size": self.batch_size,
            "budget_bytes": self.budget_bytes,
            "assumptions": asdict(self.assumptions),
            "cards": {str(g): {**c, "total": self.card_total(g)} for g, c in self.cards.items()},
            "fullest_card": self.fullest_card,
            "fits": self.fits,
            "exchanged_bytes_per_step": self.exchanged_bytes_per_step,
            "exchanges": self.exchanges,
            "layers": self.layers,
        }


# Profile rows (alexnet_keras.profile.profile_model(AlexNet())) the model-145 graph is built from.
_ROWS_2012 = (
    "image",
    "conv1",
    "lrn1",
    "pool1",
    "conv2",
    "lrn2",
    "pool2",
    "conv3",
    "conv4",
    "conv5",
    "pool5",
    "fc6",
    "drop6",
    "fc7",
    "drop7",
    "fc8",
)


def cc145_layers(rows, two_gpus=True):
    """[CC] model 145 as cuda-convnet ran it, with shapes from the AlexNet 2012 profile rows.

    Towers a (GPU 0) and b (GPU 1, or GPU 0 when `two_gpus` is False) each hold
    half of every layer's kernels; conv3, fc2048, fc2048b and fc1000 read both
    towers. Layers that exist only in [CC] (docs/cuda-convnet-2012.md, section Q2:
    layers-145.cfg) are added here: the `<name>_neuron` ReLU layers that
    `neuron=relu` detaches (layer.py:269-275), the spatial norm cnorm2 (cfg:107-117),
    the labels data layer (cfg:5-7), softmax `probs` and the `logprob` cost (cfg:301-308).
    """
    r = {row["name"]: row for row in map(_row, rows)}
    missing = [n for n in _ROWS_2012 if n not in r or "output_shape" not in r[n]]
    if missing:
        raise UserError(
            f"the 2012 cuda-convnet model needs the AlexNet 2012 profile rows (missing: "
            f"{', '.join(missing)}); pass profile_model(AlexNet('2012'))"
        )

    def size(name):
        n = 1
        for d in r[name]["output_shape"]:
            n *= int(d)
        return n

    def half(name):
        return size(name) // 2

    def conv(name, tower, gpu, inputs, neuron):
        params = int(r[name]["params"]) // 2
        filters = int(r[name]["output_shape"][-1]) // 2
        h, w = (int(d) for d in r[name]["output_shape"][:2])
        own = [
            CCLayer(
                f"{name}{tower}",
                "conv",
                half(name),
                gpu,
                inputs,
                params,
                weights_per_input=(params - filters) // len(inputs),
                modules=h * w,
                partial_sum=PARTIAL_SUM_145[name],
            )
        ]
        if neuron:
            own.append(CCLayer(f"{name}{tower}_neuron", "neuron", half(name), gpu, (f"{name}{tower}",)))
        return own

    layers = [CCLayer("data", "data", size("image"), gpu=-1), CCLayer("labels", "data", 1, gpu=-1)]
    for t, g in (("a", 0), ("b", 1 if two_gpus else 0)):
        layers += conv("conv1", t, g, ("data",), neuron=False)  # linear: LRN before ReLU (D1)
        layers += [
            CCLayer(f"rnorm1{t}", "cmrnorm", half("lrn1"), g, (f"conv1{t}",)),
            CCLayer(f"pool1{t}", "pool", half("pool1"), g, (f"rnorm1{t}",)),
            CCLayer(f"pool1{t}_neuron", "neuron", half("pool1"), g, (f"pool1{t}",)),
        ]
        layers += conv("conv2", t, g, (f"pool1{t}_neuron",), neuron=True)
        layers += [
            CCLayer(f"rnorm2{t}", "cmrnorm", half("lrn2"), g, (f"conv2{t}_neuron",)),
            CCLayer(f"cnorm2{t}", "rnorm", half("lrn2"), g, (f"rnorm2{t}",)),
            CCLayer(f"pool2{t}", "pool", half("pool2"), g, (f"cnorm2{t}",)),
        ]
        layers += conv("conv3", t, g, ("pool2a", "pool2b"), neuron=True)
        layers += conv("conv4", t, g, (f"conv3{t}_neuron",), neuron=True)
        layers += conv("conv5", t, g, (f"conv4{t}_neuron",), neuron=False)
        layers += [
            CCLayer(f"pool3{t}", "pool", half("pool5"), g, (f"conv5{t}",)),
            CCLayer(f"pool3{t}_neuron", "neuron", half("pool5"), g, (f"pool3{t}",)),
            CCLayer(
                f"fc2048{t}", "fc", half("fc6"), g, ("pool3a_neuron", "pool3b_neuron"), int(r["fc6"]["params"]) // 2
            ),
            CCLayer(f"fc2048{t}_neuron", "neuron", half("fc6"), g, (f"fc2048{t}",)),
            CCLayer(f"hs1{t}", "hs", half("drop6"), g, (f"fc2048{t}_neuron",)),
            CCLayer(f"fc2048b{t}", "fc", half("fc7"), g, ("hs1a", "hs1b"), int(r["fc7"]["params"]) // 2),
            CCLayer(f"fc2048b{t}_neuron", "neuron", half("fc7"), g, (f"fc2048b{t}",)),
            CCLayer(f"hs2{t}", "hs", half("drop7"), g, (f"fc2048b{t}_neuron",)),
        ]
    layers += [
        CCLayer("fc1000", "fc", size("fc8"), 0, ("hs2a", "hs2b"), int(r["fc8"]["params"])),
        CCLayer("probs", "softmax", size("fc8"), 0, ("fc1000",)),
        CCLayer("logprob", "cost", 0, 0, ("labels", "probs"), classes=size("fc8")),
    ]
    return layers


@dataclass
class WhyTwoGpus:
    """One card vs the paper's two-card split, in the 2012 model, beside the TF-style plan."""

    single: CC2012Plan
    split: CC2012Plan
    tf_estimate: Plan
    sensitivity: list
    deciding: list
    conclusion: str
    single_card_max_batch: int = 0
    tf_towers: "TowersPlan" = None  # the same split as Keras/JAX holds it (towers_plan)

    def as_dict(self):
        return {
            "single_card_max_batch": self.single_card_max_batch,
            "single_card": self.single.as_dict(),
            "two_cards": self.split.as_dict(),
            "tf_estimate_one_card": {k: v for k, v in self.tf_estimate.as_dict().items() if k != "layers"},
            "tf_estimate_towers_per_card": (
                {k: v for k, v in self.tf_towers.as_dict().items() if k != "layers"} if self.tf_towers else None
            ),
            "sensitivity": self.sensitivity,
            "deciding_assumptions": self.deciding,
            "conclusion": self.conclusion,
        }


def why_two_gpus(rows, batch_size=128, budget_bytes=GTX580_MEMORY_BYTES, assumptions=CC2012Assumptions()):
    """The 2012 net on one card and split over two, by what cuda-convnet held (see `cc_memory_2012`).

    `rows` are the AlexNet 2012 profile rows. `sensitivity` flips each assumption
    alone on the single card; `deciding` lists those that flip its verdict,
    largest change first.
    """
    from dataclasses import fields

    single = cc_memory_2012(cc145_layers(rows, two_gpus=False), batch_size, assumptions, budget_bytes)
    split = cc_memory_2012(cc145_layers(rows, two_gpus=True), batch_size, assumptions, budget_bytes)
    tf = plan(rows, batch_size, replicas=1, budget_bytes=budget_bytes)
    sensitivity = []
    for f in fields(assumptions):
        if f.name not in ASSUMPTIONS_2012:
            continue
        alt = cc_memory_2012(cc145_layers(rows, two_gpus=False), batch_size, assumptions.flipped(f.name), budget_bytes)
        sensitivity.append(
            {
                "assumption": f.name,
                "value": getattr(assumptions, f.name),
                "alternative": getattr(assumptions.flipped(f.name), f.name),
                "single_card_bytes": alt.total_bytes,
                "fits": alt.fits,
                "flips_verdict": alt.fits != single.fits,
            }
        )
    deciding = sorted(
        (s for s in sensitivity if s["flips_verdict"]), key=lambda s: -abs(s["single_card_bytes"] - single.total_bytes)
    )
    deciding = [s["assumption"] for s in deciding]
    one_card = cc145_layers(rows, two_gpus=False)
    low, high = 0, max(batch_size, 1)  # every term grows with the batch: bisect the largest that fits
    while cc_memory_2012(one_card, high, assumptions, budget_bytes).fits:
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if cc_memory_2012(one_card, mid, assumptions, budget_bytes).fits else (low, mid)
    return WhyTwoGpus(
        single,
        split,
        tf,
        sensitivity,
        deciding,
        _conclusion(single, split, tf, sensitivity, deciding, low),
        low,
        towers_plan(rows, batch_size, budget_bytes=budget_bytes),
    )


def _conclusion(single, split, tf, sensitivity, deciding, max_batch):
    budget = f"{single.budget_bytes / GIB:g} GiB"
    b = single.batch_size
    alt = {s["assumption"]: s["single_card_bytes"] for s in sensitivity}
    if single.fits:
        text = (
            f"By this model the net would have fitted on one {budget} card at batch {b}, "
            f"with {_mib(single.budget_bytes - single.total_bytes)} to spare."
        )
        if deciding:
            d = deciding[0]
            text += (
                f" Decided by {d} ({ASSUMPTIONS_2012[d][0]}): with the alternative "
                f"({ASSUMPTIONS_2012[d][2]}) it needs {_mib(alt[d])} and would not fit."
            )
    else:
        text = (
            f"By this model the net would not have fitted on one {budget} card at batch {b}: "
            f"{_mib(single.total_bytes)}, {_mib(single.total_bytes - single.budget_bytes)} over."
        )
        if deciding:
            d = deciding[0]
            text += (
                f" Decided by {d} ({ASSUMPTIONS_2012[d][0]}): without it "
                f"({ASSUMPTIONS_2012[d][2]}) one card needs {_mib(alt[d])} and would fit."
            )
        else:
            text += " No single assumption of the model changes that."
        text += f" The largest batch one card would have held is {max_batch}."
    if len(deciding) > 1:
        text += f" Flipping {', '.join(deciding[1:])} alone would also change the verdict."
    g = split.fullest_card
    text += f" Split over two cards the fuller card (GPU {g}) needs {_mib(split.total_bytes)}, " + (
        f"{_mib(split.budget_bytes - split.total_bytes)} to spare."
        if split.fits
        else f"{_mib(split.total_bytes - split.budget_bytes)} over."
    )
    text += f" The TF-style estimate for one card is {_mib(tf.total_bytes)} ({'fits' if tf.fits else 'does not fit'})."
    return text


def format_why_two_gpus(w):
    """The single-card and two-card 2012 plans side by side, the TF-style estimate, the assumptions."""
    s, t = w.single, w.split
    head = f"{'component':<26} {'one card':>12} {'2 cards: GPU 0':>15} {'GPU 1':>12}"
    lines = [f"What cuda-convnet held for model 145 at batch {s.batch_size} (MiB, float32):", head, "-" * len(head)]
    g1 = t.cards.get(1, dict.fromkeys(COMPONENTS_2012, 0))
    for key in COMPONENTS_2012:
        lines.append(
            f"{key.replace('_', ' '):<26} {s.cards[0][key] / MIB:>12,.1f} "
            f"{t.cards[0][key] / MIB:>15,.1f} {g1[key] / MIB:>12,.1f}"
        )
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<26} {s.card_total(0) / MIB:>12,.1f} {t.card_total(0) / MIB:>15,.1f} "
        f"{(t.card_total(1) if 1 in t.cards else 0) / MIB:>12,.1f}"
    )
    lines.append(f"{'budget per card':<26} {s.budget_bytes / MIB:>12,.1f}")
    lines.append(
        f"exchanged between the cards per step: {_mib(t.exchanged_bytes_per_step)} "
        f"({', '.join(sorted({e['layer'] for e in t.exchanges}))})"
    )
    lines.append(f"TF-style estimate, one card (plan above, replicas=1): {_mib(w.tf_estimate.total_bytes)}")
    if w.tf_towers is not None:
        lines.append(
            f"TF-style estimate, the split (towers_plan, fc8 halved too): {_mib(w.tf_towers.total_bytes)} per card, "
            f"{_mib(w.tf_towers.sent_bytes_per_card)} sent by each card per step"
        )
    lines.append("assumptions (one card's total with each flipped alone):")
    for row in w.sensitivity:
        what, source, _ = ASSUMPTIONS_2012[row["assumption"]]
        mark = "  <- flips the verdict" if row["flips_verdict"] else ""
        lines.append(
            f"  {row['assumption']} = {row['value']}: {what}; {_mib(row['single_card_bytes'])} "
            f"if {row['alternative']}{mark}"
        )
        lines.append(f"      source: {source}")
    lines.append(w.conclusion)
    return "\n".join(lines)


# --- The paper's towers split as Keras runs it (`--parallel towers`) -------------
#
# [P] §3.2: each GPU holds half of every layer's kernels; conv2, conv4 and conv5 read
# only their own card's maps, and the cards talk at conv3 and the fully connected
# layers. Under `keras.distribution.ModelParallel` with the paper's layout each card
# holds half of every kernel (split along output channels), its optimizer state and
# gradients, and its half of the channels of every activation for ALL images of the
# batch; a layer that reads both towers gathers the other card's half of its input.
# Terms as in `plan()` (what TF/XLA keeps for backprop), with three differences:
# the input batch is whole on each card, a tower's convolution reads its own half
# directly (no split-tower input copy), and the gathered halves are kept too.

TOWER_CARDS = 2  # [P] §3.2: two GPUs, one tower each
# Weight layers that read both towers when their input is tower-split: conv3, fc6-8.
# GroupedConv2D (conv2/4/5) reads only its own tower; conv1 reads the whole image.
GATHERING_KINDS = ("Conv2D", "Dense")
INPUT_KINDS = ("InputLayer",)


def _half(n):
    """The fuller card's half of `n` (ceil)."""
    return -(-int(n) // 2)


@dataclass
class TowersPlan:
    """Per-card memory and per-step exchange of the paper's two-card split. Bytes per card."""

    batch_size: int
    cards: int
    budget_bytes: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    gathered_bytes: int
    transient_bytes: int
    workspace_bytes: int
    exchange_buffer_bytes: int
    per_image_bytes: int
    fixed_bytes: int
    exchanges: list = field(default_factory=list)
    layers: list = field(default_factory=list)

    @property
    def total_bytes(self):
        return (
            self.weights_bytes
            + self.gradients_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.gathered_bytes
            + self.transient_bytes
            + self.workspace_bytes
            + self.exchange_buffer_bytes
        )

    @property
    def fits(self):
        return self.total_bytes <= self.budget_bytes

    @property
    def max_batch(self):
        """The largest batch (every card sees all of it) within the budget."""
        spare = self.budget_bytes - self.fixed_bytes
        return max(0, spare // self.per_image_bytes) if self.per_image_bytes else None

    @property
    def sent_bytes_per_card(self):
        """Bytes one card sends in one training step (forward activations + backward gradients)."""
        return sum(e["forward_bytes"] + e["backward_bytes"] for e in self.exchanges)

    @property
    def exchanged_bytes_per_step(self):
        """Bytes crossing between the cards in one step, both directions together."""
        return self.cards * self.sent_bytes_per_card

    def verdict(self):
        word = "fits" if self.fits else "does not fit"
        return (
            f"{word}: {_gib(self.total_bytes)} per card of a {_gib(self.budget_bytes)} budget "
            f"(towers: {self.cards} cards, each half of every layer, all {self.batch_size} images)"
        )

    def as_dict(self):
        return {
            "parallel": "towers",
            "batch_size": self.batch_size,
            "cards": self.cards,
            "budget_bytes": self.budget_bytes,
            "per_card_bytes": {
                "weights": self.weights_bytes,
                "gradients": self.gradients_bytes,
                "optimizer": self.optimizer_bytes,
                "activations": self.activations_bytes,
                "gathered_inputs": self.gathered_bytes,
                "backprop_transients": self.transient_bytes,
                "workspace": self.workspace_bytes,
                "exchange_buffer": self.exchange_buffer_bytes,
                "total": self.total_bytes,
            },
            "per_image_bytes": self.per_image_bytes,
            "max_batch": self.max_batch,
            "fits": self.fits,
            "exchanges": self.exchanges,
            "sent_bytes_per_card_per_step": self.sent_bytes_per_card,
            "exchanged_bytes_per_step": self.exchanged_bytes_per_step,
            "layers": self.layers,
        }


def towers_plan(
    layers,
    batch_size,
    budget_bytes=GTX580_MEMORY_BYTES,
    bytes_per_value=4,
    optimizer_slots=1,
    update_temporaries=UPDATE_TEMPORARIES["paper_sgd"],
):
    """Per-card memory and bytes exchanged per step for the paper's two-card split.

    Every weight layer is halved along its output channels, fc8 too (each card
    computes half of the logits, so the logits are gathered for the softmax: each
    card sends its half forward and computes the softmax gradient of its own half
    locally, so nothing goes back). [CC] kept fc8 whole on GPU 0 instead; that
    layout is `why_two_gpus`'s.

    Args:
        layers: profile rows of a network with towers (`profile_model(AlexNet("2012"))`),
            in network order; as for `plan()`.
        batch_size: the batch; every card computes its half of every layer for all of it.
        budget_bytes: memory of one card (3 GiB: a GTX 580 3 GB).
        bytes_per_value, optimizer_slots, update_temporaries: as for `plan()`.

    Returns:
        a `TowersPlan`. `exchanges` lists, per exchange point, the bytes one card
        sends the other (`forward_bytes`: its half of the activations; `backward_bytes`:
        the gradient of the other card's half, which it computed); both cards send
        the same.

    Example:
    >>> rows = [{"name": "image", "kind": "InputLayer", "params": 0, "activation_bytes": 8},
    ...         {"name": "a", "kind": "Conv2D", "params": 10, "activation_bytes": 16},
    ...         {"name": "b", "kind": "GroupedConv2D", "params": 6, "activation_bytes": 16},
    ...         {"name": "c", "kind": "Dense", "params": 4, "activation_bytes": 4}]
    >>> p = towers_plan(rows, 2)
    >>> [(e["point"], e["forward_bytes"], e["backward_bytes"]) for e in p.exchanges]
    [('c input', 16, 16), ('logits', 4, 0)]
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise UserError(f"batch size must be positive, got {batch_size}")
    rows = [_row(layer) for layer in layers]
    if not rows:
        raise UserError("no layers to plan")
    if not any(r.get("kind") == "GroupedConv2D" for r in rows):
        raise UserError(
            "--parallel towers needs a network with the paper's towers (AlexNet 2012's grouped conv2/4/5); "
            "this one has none (owt): use --parallel data"
        )

    detail, exchanges = [], []
    previous, previous_split, previous_name = 0, False, None
    for i, r in enumerate(rows):
        out = int(r["activation_bytes"])
        kind = r.get("kind", "")
        split = not (kind in INPUT_KINDS or i == 0)  # the input batch is whole on each card
        own = _half(out) if split else out
        gathered, whole_input = 0, 0
        if kind in GATHERING_KINDS and previous_split:  # reads both towers: gather the other half
            gathered, whole_input = previous - _half(previous), previous
            exchanges.append(
                {
                    "point": f"{r['name']} input",
                    "layer": r["name"],
                    "tensor": previous_name,
                    "forward_bytes": gathered * batch_size,
                    "backward_bytes": gathered * batch_size,
                }
            )
        detail.append(
            {
                **r,
                "split": split,
                "own_bytes": own,
                "kept_bytes": KEPT_FACTOR.get(kind, 1) * own,
                "gathered_bytes": gathered,
                "whole_input_bytes": whole_input,
            }
        )
        previous, previous_split, previous_name = out, split, r["name"]

    last = max((i for i, d in enumerate(detail) if d.get("kind") in GATHERING_KINDS), default=None)
    if last is not None and detail[last]["split"]:  # the softmax needs every class's logit on each card
        logits = detail[last]
        other = int(logits["activation_bytes"]) - logits["own_bytes"]
        logits["gathered_bytes"] += other
        exchanges.append(
            {
                "point": "logits",
                "layer": logits["name"],
                "tensor": logits["name"],
                "forward_bytes": other * batch_size,
                "backward_bytes": 0,
            }
        )

    halves = [_half(r["params"]) for r in rows]
    weights = sum(halves) * bytes_per_value
    kept_per_image = sum(d["kept_bytes"] for d in detail)
    gathered_per_image = sum(d["gathered_bytes"] for d in detail)
    # gradients of the largest tensor a card holds alive at once (a gathered input is whole)
    largest = max(max(d["own_bytes"], d["whole_input_bytes"]) for d in detail)
    transient_per_image = TRANSIENT_FACTOR * largest
    # one transfer's send buffer at a time (the largest), besides what is kept
    buffer_per_image = max((max(e["forward_bytes"], e["backward_bytes"]) for e in exchanges), default=0) // batch_size
    workspace = update_temporaries * max(halves) * bytes_per_value
    fixed = weights * (2 + optimizer_slots) + workspace
    return TowersPlan(
        batch_size=batch_size,
        cards=TOWER_CARDS,
        budget_bytes=int(budget_bytes),
        weights_bytes=weights,
        gradients_bytes=weights,
        optimizer_bytes=weights * optimizer_slots,
        activations_bytes=kept_per_image * batch_size,
        gathered_bytes=gathered_per_image * batch_size,
        transient_bytes=transient_per_image * batch_size,
        workspace_bytes=workspace,
        exchange_buffer_bytes=buffer_per_image * batch_size,
        per_image_bytes=kept_per_image + gathered_per_image + transient_per_image + buffer_per_image,
        fixed_bytes=fixed,
        exchanges=exchanges,
        layers=detail,
    )


def check_towers_fits(layers, batch_size, budget_bytes=GTX580_MEMORY_BYTES, **kwargs):
    """`towers_plan(...)`, raising `UserError` (one line) if a card's share does not fit."""
    p = towers_plan(layers, batch_size, budget_bytes=budget_bytes, **kwargs)
    if not p.fits:
        raise UserError(
            f"batch {p.batch_size} does not fit the towers split: {_gib(p.total_bytes)} per card > "
            f"{_gib(p.budget_bytes)}; the largest batch that fits is about {p.max_batch}"
        )
    return p


def format_towers_plan(p):
    """The towers plan as text: per-layer halves, per-card memory, the exchanges."""
    header = f"{'layer':<10} {'type':<27} {'output':<12} {'params/card':>12} {'own/img':>11} {'gathered/img':>13}"
    lines = [header, "-" * len(header)]
    for d in p.layers:
        shape = "x".join(str(s) for s in d.get("output_shape", ()) or ())
        lines.append(
            f"{d['name']:<10} {d.get('kind', ''):<27} {shape:<12} {_half(d['params']):>12,} "
            f"{d['own_bytes']:>11,} {d['gathered_bytes']:>13,}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"training memory per card (towers: {p.cards} cards, half of every layer, all {p.batch_size} images, float32):"
    )
    lines += _memory_lines(
        p,
        (
            ("weights (half of every layer)", p.weights_bytes),
            ("gradients", p.gradients_bytes),
            ("optimizer slots", p.optimizer_bytes),
            ("activations kept for backprop", p.activations_bytes),
            ("gathered halves from the other card", p.gathered_bytes),
            ("backprop transients", p.transient_bytes),
            ("workspace (optimizer temporaries)", p.workspace_bytes),
            ("exchange send buffer", p.exchange_buffer_bytes),
        ),
    )
    lines.append(f"bytes one card sends the other per training step (batch {p.batch_size}):")
    lines.append(f"  {'point':<14} {'tensor':<10} {'forward':>14} {'backward':>14}")
    for e in p.exchanges:
        lines.append(
            f"  {e['point']:<14} {e['tensor']:<10} {_mib(e['forward_bytes']):>14} {_mib(e['backward_bytes']):>14}"
        )
    lines.append(
        f"  per card {_mib(p.sent_bytes_per_card)} each way; {_mib(p.exchanged_bytes_per_step)} cross per step"
    )
    return "\n".join(lines)
