"""Builds the `tf.distribute` strategy for a run, including the two-GTX-580 simulation.

`--simulate-gtx580` recreates the paper's pair of 3 GB cards as two replicas:

* with GPUs: two logical GPUs capped at 3072 MiB (`GTX580_MEMORY_MIB`), carved from
  one card, or the first two cards each capped, following TF's "Using multiple GPUs"
  guide. This path is written to the TF docs but has not been run on a GPU here;
* CPU only: two logical CPU devices; the 3 GB limit is enforced by the memory plan
  (`alexnet_keras.simulations.memory`), since `memory_limit` only works on GPUs.

Logical devices can only be configured before TensorFlow initialises its devices,
so `strategy_for` must run before the first tensor is created.

TensorFlow is imported inside the functions, so the constants and `is_chief` load
without it (on machines that have only JAX, for instance).
"""

import json
import os
from dataclasses import dataclass

from ..constants import GTX580_MEMORY_BYTES, STRATEGIES
from ..errors import UserError

GTX580_MEMORY_MIB = GTX580_MEMORY_BYTES // 2**20  # logical GPUs take MiB


@dataclass(frozen=True)
class DevicePlan:
    """What `configure_devices` sets up: device type and per-physical-device limits."""

    device_type: str  # "GPU" or "CPU"
    # One entry per physical device that gets logical devices: (index, [memory_limit MiB or None, ...]).
    layout: tuple

    @property
    def replicas(self):
        return sum(len(limits) for _, limits in self.layout)


def gtx580_device_plan(num_gpus, replicas=2):
    """Logical devices that stand in for the paper's two 3 GB GTX 580s.

    Args:
        num_gpus: physical GPUs on the host.
        replicas: how many cards to simulate (the paper used 2).
    """
    if num_gpus == 0:
        return DevicePlan("CPU", ((0, (None,) * replicas),))
    if num_gpus == 1:
        return DevicePlan("GPU", ((0, (GTX580_MEMORY_MIB,) * replicas),))
    return DevicePlan("GPU", tuple((i, (GTX580_MEMORY_MIB,)) for i in range(replicas)))


def configure_devices(plan):
    """Applies a `DevicePlan` with `tf.config.set_logical_device_configuration`."""
    import tensorflow as tf

    physical = tf.config.list_physical_devices(plan.device_type)
    for index, limits in plan.layout:
        configs = [tf.config.LogicalDeviceConfiguration(memory_limit=limit) for limit in limits]
        try:
            tf.config.set_logical_device_configuration(physical[index], configs)
        except RuntimeError:
            # Already initialised: fine if an earlier call in this process set the same devices.
            if len(tf.config.list_logical_devices(plan.device_type)) < plan.replicas:
                raise UserError(
                    "TensorFlow was initialised before the simulated devices were configured; "
                    "run the simulation in a fresh process (or restart the notebook kernel)"
                ) from None
    return [d.name for d in tf.config.list_logical_devices(plan.device_type)][: plan.replicas]


def strategy_for(strategy="auto", simulate_gtx580=False):
    """Returns a `tf.distribute.Strategy` for the run.

    Args:
        strategy: `"auto"` (mirrored over several GPUs, else default), `"default"`
            or `"mirrored"`.
        simulate_gtx580: two replicas standing in for the paper's two cards.
    """
    import tensorflow as tf

    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if simulate_gtx580:
        if strategy == "default":
            raise UserError("--simulate-gtx580 needs two replicas; it conflicts with --strategy default")
        plan = gtx580_device_plan(len(tf.config.list_physical_devices("GPU")))
        devices = configure_devices(plan)
        # NCCL cannot all-reduce between logical devices of one card, nor on CPUs.
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    gpus = tf.config.list_physical_devices("GPU")
    if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy):
    """The public name of a strategy for output: "default", "mirrored", "multi-worker", ..."""
    names = {
        "_DefaultDistributionStrategy": "default",
        "MirroredStrategy": "mirrored",
        "MultiWorkerMirroredStrategy": "multi-worker",
        "OneDeviceStrategy": "one-device",
    }
    return names.get(type(strategy).__name__, type(strategy).__name__)


def is_chief(environ=None):
    """Whether this process owns the run directory (creates, checks and writes it).

    A single process always does. In a multi-worker cluster described by
    `TF_CONFIG`, the chief does, or worker 0 when the cluster has no chief; the
    other processes only read the run directory (to resume) and never refuse it.
    """
    spec = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not spec:
        return True
    try:
        config = json.loads(spec)
    except ValueError:
        raise UserError("TF_CONFIG is not valid JSON; unset it for a single-process run") from None
    if not isinstance(config, dict):
        raise UserError("TF_CONFIG must be a JSON object; unset it for a single-process run")
    task = config.get("task") or {}
    kind, index = task.get("type"), task.get("index", 0)
    if kind in (None, "chief"):
        return True
    return kind == "worker" and index == 0 and "chief" not in (config.get("cluster") or {})
