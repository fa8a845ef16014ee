"""One per-layer profile (shapes, parameters, neurons, MACs, activation bytes).

`summary`, the memory planner, the 2012 clock and the benchmarks all read this
one profile, so their numbers agree. MACs are multiply-accumulates; FLOPs are
reported as 2 x MACs. (torchvision's "0.714 GFLOPS" for AlexNet is 714 M MACs.)
"""

import math
from dataclasses import asdict, dataclass

# Layers whose outputs are "neurons" in the paper's sense (Fig. 2 counts them).
_WEIGHT_LAYERS = ("Conv2D", "GroupedConv2D", "Dense")


@dataclass
class LayerProfile:
    name: str
    kind: str
    output_shape: tuple
    params: int
    neurons: int
    macs: int
    activation_bytes: int  # per image

    @property
    def flops(self):
        return 2 * self.macs

    def as_dict(self):
        row = asdict(self)
        row["output_shape"] = list(self.output_shape)
        row["flops"] = self.flops
        return row


def _layer_macs(layer, out_shape):
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        return 0
    per_position = math.prod(kernel.shape)
    if len(kernel.shape) == 4:  # conv: one kernel application per output position
        return per_position * out_shape[0] * out_shape[1]
    return per_position


def profile_model(model, bytes_per_value=4):
    """Returns one `LayerProfile` per layer of a built Keras model (per image)."""
    rows = []
    for layer in model.layers:
        out_shape = tuple(layer.output.shape[1:])
        elements = math.prod(d for d in out_shape if d is not None)
        kind = type(layer).__name__
        rows.append(
            LayerProfile(
                name=layer.name,
                kind=kind,
                output_shape=out_shape,
                params=int(layer.count_params()) if layer.weights else 0,
                neurons=elements if kind in _WEIGHT_LAYERS else 0,
                macs=int(_layer_macs(layer, out_shape)),
                activation_bytes=elements * bytes_per_value,
            )
        )
    return rows


def totals(rows):
    """Sums of the additive columns."""
    return {
        "params": sum(r.params for r in rows),
        "neurons": sum(r.neurons for r in rows),
        "macs": sum(r.macs for r in rows),
        "flops": sum(r.flops for r in rows),
        "activation_bytes": sum(r.activation_bytes for r in rows),
    }


def macs_per_image(models):
    """Multiply-accumulates per image of a model, or of an ensemble (a list: every member runs).

    Example:
    >>> import keras
    >>> dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> macs_per_image(dense), macs_per_image([dense, dense])
    (12, 24)
    """
    models = models if isinstance(models, (list, tuple)) else [models]
    return sum(totals(profile_model(model))["macs"] for model in models)


def summary_table(rows):
    """Formats profile rows as a fixed-width text table with totals."""
    header = f"{'layer':<10} {'type':<27} {'output shape':<16} {'params':>12} {'neurons':>10} {'MACs':>14}"
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(f"{r.name:<10} {r.kind:<27} {shape:<16} {r.params:>12,} {r.neurons:>10,} {r.macs:>14,}")
    t = totals(rows)
    lines.append("-" * len(header))
    lines.append(f"{'total':<55} {t['params']:>12,} {t['neurons']:>10,} {t['macs']:>14,}")
    lines.append(f"MACs = multiply-accumulates per image; FLOPs = 2 x MACs = {t['flops']:,}")
    return "\n".join(lines)
