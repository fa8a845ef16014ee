"""Where a run trains: `setup(config)` returns the `Devices` that `train` uses on either
backend (a `tf.distribute` strategy on TF; a `keras.distribution` on JAX: `--parallel
data` is `DataParallel`, `--parallel towers` the paper's split from `towers`).

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

import contextlib
import json
import os
import sys
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
    In a multi-process JAX run (`start_processes`), process 0 does.
    """
    multihost = sys.modules.get(__package__ + ".multihost")  # joined by `start_processes`, if at all
    if multihost is not None and multihost.process_count() > 1:
        return multihost.is_chief()
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


# --- backend dispatch: one `Devices` object for train() on TF or JAX -----------------

BACKEND_EXTRAS = {"jax": "jax", "torch": "torch"}  # backend module -> the extra that installs it
FORCE_TWO_CPUS = "XLA_FLAGS=--xla_force_host_platform_device_count=2"


def configured_backend(environ=None):
    """The Keras backend a fresh `import keras` will pick, read without importing Keras:
    `KERAS_BACKEND`, else `keras.json`'s "backend" (Keras' own order), else "tensorflow"."""
    env = os.environ if environ is None else environ
    if env.get("KERAS_BACKEND"):
        return env["KERAS_BACKEND"]
    home = env.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            backend = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"
    return backend if isinstance(backend, str) and backend else "tensorflow"


def require_backend_package(environ=None):
    """Refuses in one line when the configured backend's package is missing.

    Call before `import keras`: Keras imports its backend at import time, and a
    missing JAX or torch is otherwise a traceback from deep inside Keras.
    """
    backend = configured_backend(environ)
    if backend not in BACKEND_EXTRAS:
        return
    try:
        __import__(backend)
    except ImportError as e:
        raise UserError(
            f"KERAS_BACKEND is {backend!r} but {backend} cannot be imported ({e}); "
            f"install it with: pip install 'alexnet-keras[{BACKEND_EXTRAS[backend]}]'"
        ) from None


@dataclass(frozen=True)
class Devices:
    """Where a run trains, for either backend; `train` uses only this.

    `strategy` (TF) or `distribution` (JAX, a `keras.distribution.Distribution`)
    is set, or neither: one device. `replicas`: data-parallel copies of the network
    (towers: one per pair of devices, both devices of a pair see the pair's whole batch).
    """

    kind: str  # "tf" | "jax"
    name: str  # "default", "mirrored", "data", "towers"
    replicas: int
    per_device_batch: int
    strategy: object = None
    distribution: object = None

    def scope(self):
        """Build the model, and fit, under this: variables get their devices and layouts."""
        if self.strategy is not None:
            return self.strategy.scope()
        if self.distribution is not None:
            return self.distribution.scope()
        return contextlib.nullcontext()

    def fit_scope(self):
        """Run `fit` under this. Keras' JAX trainer shards each batch by the distribution
        current at fit time; TF's `fit` enters the model's strategy itself."""
        if self.distribution is not None:
            return self.distribution.scope()
        return contextlib.nullcontext()

    def distribute_dataset(self, ds):
        """A process's part of a global tf.data set (the whole set with one process)."""
        # Keras' fit already shards a tf.data set by process under a multi-process distribution
        # (its TF dataset adapter calls distribution.distribute_dataset); doing it here as well
        # split every batch twice (half the global batch, and an unknown batch size) -- M.
        return ds


def setup(config):
    """The `Devices` of a run: TF strategy or JAX distribution from `config.parallel`,
    `config.strategy` and `config.simulate_gtx580`. Call before TF or JAX initialise
    their devices (logical TF devices and JAX's distributed runtime need that)."""
    import keras

    backend = keras.backend.backend()
    parallel = getattr(config, "parallel", None)
    if backend == "tensorflow":
        start_processes(config)  # refuses TF multi-worker, which Keras 3's fit cannot run
        return _setup_tf(config, parallel)
    if backend == "jax":
        return _setup_jax(config, parallel)
    raise UserError(
        f"train runs on the TensorFlow or JAX backend; KERAS_BACKEND is {backend!r}. "
        "Set KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow."
    )


def _checked(devices, batch_size, what):
    if batch_size % devices.replicas:
        raise UserError(
            f"batch size {batch_size} does not divide across {devices.replicas} {what}; "
            f"give a --batch-size that is a multiple of {devices.replicas}"
        )
    return devices


def _setup_tf(config, parallel):
    if parallel == "towers":
        raise UserError("--parallel towers (the paper's model split) needs the JAX backend: run with KERAS_BACKEND=jax")
    strategy_choice = "mirrored" if parallel == "data" and not config.simulate_gtx580 else config.strategy
    strategy = strategy_for(strategy_choice, config.simulate_gtx580)
    replicas = strategy.num_replicas_in_sync
    name = "data" if parallel == "data" else strategy_name(strategy)
    devices = Devices("tf", name, replicas, config.batch_size // replicas, strategy=strategy)
    return _checked(devices, config.batch_size, "replicas")


def _hide_gpus_from_tensorflow():
    """tf.data runs on the host; without this TF would reserve the GPUs' memory JAX trains on."""
    # TF's C++ start-up lines (the CLI silences them on the TF backend) go to /dev/null too.
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TF already initialised its devices (e.g. a notebook ran TF code first)
        if tf.config.get_visible_devices("GPU"):
            raise UserError(
                "TensorFlow already holds the GPUs, so JAX cannot train on them; "
                "run training in a fresh process (or restart the notebook kernel)"
            ) from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start_processes(config):
    """Joins a multi-process run (`multihost.initialize`) before JAX starts its devices;
    True when this process is one of several. A no-op for one process; on TF, the
    multi-process refusal. Safe to call twice (the first call's result stands)."""
    try:
        from . import multihost
    except ImportError:  # lands with the multi-process module
        return False
    return multihost.initialize(config) is not None


def _setup_jax(config, parallel):
    import keras

    _hide_gpus_from_tensorflow()
    if start_processes(config) and parallel is None:
        parallel = "data"  # several processes train data parallel
    devices = keras.distribution.list_devices()
    kinds = {d.split(":")[0] for d in devices}
    if config.simulate_gtx580:
        if len(devices) < 2:
            if "cpu" in kinds:
                raise UserError(
                    f"--simulate-gtx580 on JAX needs two devices and JAX sees one CPU; "
                    f"start with {FORCE_TWO_CPUS} (before JAX starts)"
                )
            raise UserError(
                f"--simulate-gtx580 on JAX needs two devices and JAX sees one {devices[0].split(':')[0].upper()}; "
                "JAX cannot carve two devices from one card: use two GPUs, or run it on TensorFlow, "
                "whose logical GPUs can (KERAS_BACKEND=tensorflow, without --parallel towers)"
            )
        devices = devices[:2]  # the paper's two cards
        parallel = parallel or "data"
    if parallel == "towers":
        try:
            from . import towers
        except ImportError:  # lands with the towers module
            raise UserError("--parallel towers is not available in this version") from None
        distribution = towers.distribution(config.variant, devices=devices)
        pairs = len(devices) // 2  # each pair of devices holds one network; pairs train data parallel
        towers_ = Devices("jax", "towers", pairs, config.batch_size // pairs, distribution=distribution)
        return _checked(towers_, config.batch_size, "pairs of devices")
    if parallel == "data":
        distribution = keras.distribution.DataParallel(devices=devices)
        replicas = len(devices)
        devices_ = Devices("jax", "data", replicas, config.batch_size // replicas, distribution=distribution)
        return _checked(devices_, config.batch_size, "devices")
    return Devices("jax", "default", 1, config.batch_size)
