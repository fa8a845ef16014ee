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
(see tests/test_simulations.py): within 15% of the measured peak for AlexNet 2012
at batch 8 to 128 and owt at 8 to 64, with either optimizer. The all-reduce copy
is an assumption (one CPU here cannot measure MirroredStrategy on two GPUs).

Parameters use `bytes_per_value`; activations are taken as the rows give them
(`profile_model` counts float32).

Example:
>>> rows = [{"name": "fc", "kind": "Dense", "params": 1000, "activation_bytes": 40}]
>>> p = plan(rows, batch_size=10)
>>> p.weights_bytes, p.activations_bytes
(4000, 400)
"""

from dataclasses import dataclass, field

GIB = 2**30
GTX580_BYTES = 3 * GIB

# Multiples of a layer's output kept for backprop, by layer class name (see above).
KEPT_FACTOR = {
    "Flatten": 0,
    "Reshape": 0,
    "LocalResponseNormalization": 3,
    "AlexNetDropout": 2,
    "Dropout": 2,
}
# Layers whose input is copied (and kept) on top of their output.
KEEPS_INPUT_COPY = ("GroupedConv2D",)
TRANSIENT_FACTOR = 2  # gradient tensors of the largest layer alive at once
# Update temporaries the size of the largest layer's parameters, per optimizer.
UPDATE_TEMPORARIES = {"paper_sgd": 4, "sgd": 2}


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
            self.weights_bytes + self.gradients_bytes + self.optimizer_bytes + self.activations_bytes
            + self.transient_bytes + self.workspace_bytes + self.allreduce_bytes
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


def plan(layers, batch_size, replicas=1, budget_bytes=GTX580_BYTES, bytes_per_value=4, optimizer_slots=1,
         update_temporaries=UPDATE_TEMPORARIES["paper_sgd"]):
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
    from alexnet_keras.errors import UserError  # plain Python: no Keras behind it

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


def check_fits(layers, batch_size, replicas=1, budget_bytes=GTX580_BYTES, **kwargs):
    """`plan(...)`, raising `alexnet_keras.errors.UserError` (one line) if it does not fit.

    Returns:
        the `Plan` when it fits.

    Example:
    >>> check_fits([{"name": "a", "params": 10, "activation_bytes": 8}], 2).fits
    True
    """
    from alexnet_keras.errors import UserError

    p = plan(layers, batch_size, replicas=replicas, budget_bytes=budget_bytes, **kwargs)
    if not p.fits:
        largest = p.max_per_replica_batch * p.replicas
        raise UserError(
            f"batch {p.batch_size} does not fit: {_gib(p.total_bytes)} per replica "
            f"({p.replicas} x {p.per_replica_batch} images) > {_gib(p.budget_bytes)}; "
            f"the largest batch that fits is about {largest}"
        )
    return p


def _gib(n):
    return f"{n / GIB:.2f} GiB"


def _mib(n):
    return f"{n / 2**20:,.1f} MiB"


def format_plan(p):
    """The plan as text: one row per layer, then the per-replica budget lines."""
    header = (
        f"{'layer':<10} {'type':<27} {'output':<12} {'params':>12} {'FLOPs':>15} "
        f"{'act/img':>11} {'kept/img':>11}"
    )
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
    lines.append(
        f"training memory per replica ({p.replicas} replica(s), {p.per_replica_batch} images each, float32):"
    )
    for label, n in (
        ("weights", p.weights_bytes),
        ("gradients", p.gradients_bytes),
        ("optimizer slots", p.optimizer_bytes),
        ("activations kept for backprop", p.activations_bytes),
        ("backprop transients", p.transient_bytes),
        ("workspace (optimizer temporaries)", p.workspace_bytes),
        ("all-reduce buffer", p.allreduce_bytes),
    ):
        lines.append(f"  {label:<36} {_mib(n):>14}")
    lines.append(f"  {'total':<36} {_mib(p.total_bytes):>14}")
    lines.append(f"  {'budget':<36} {_mib(p.budget_bytes):>14}")
    lines.append(p.verdict())
    return "\n".join(lines)
