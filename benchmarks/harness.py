"""What every benchmark shares: timers, the machine's description, and the package's constants.

Plain Python: it imports no framework, so `benchmarks.gpu`'s torch part stays free
of Keras and JAX, and `benchmarks.cpu` can still import torch before TensorFlow.
"""

import datetime
import importlib.util
import os
import pathlib
import platform
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def package_constants():
    """`alexnet_keras.constants`, without running the package's `__init__` (which imports Keras).

    Input sizes and preprocessing specs come from there, defined once.
    """
    if "alexnet_keras.constants" in sys.modules:
        return sys.modules["alexnet_keras.constants"]
    spec = importlib.util.find_spec("alexnet_keras")  # finds the package without importing it
    path = pathlib.Path(spec.submodule_search_locations[0]) / "constants.py"
    module_spec = importlib.util.spec_from_file_location("_alexnet_keras_constants", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def load_average():
    """The 1-minute load average, rounded: other processes slow every number down."""
    return round(os.getloadavg()[0], 2)


def machine_info(extra=None):
    """CPU model, cores, platform, load and date, plus `extra` (framework versions and settings)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **(extra or {}),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def time_calls(fn, steps, warmup):
    """Seconds of each of `steps` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def alternate(fns, steps, warmup):
    """Runs each callable `warmup` times, then `steps` rounds, alternating the order
    every round so neither side always runs right after the other. Returns seconds
    per call, by name."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    names = list(fns)
    for step in range(steps):
        for name in names if step % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def rate(batch, seconds):
    """Images per second from per-step seconds: the median step."""
    return batch / statistics.median(seconds)


def moving_mean(values, window):
    """Trailing means over `window` values, full windows only (len(values) - window + 1 of them)."""
    window = max(1, min(int(window), len(values)))
    return [sum(values[i - window + 1 : i + 1]) / window for i in range(window - 1, len(values))]


def within_noise(reference, second_seed, other, window):
    """Does `other`'s loss curve stay within the noise of `reference`'s?

    The noise is the spread between two runs that differ only in their seed
    (`reference` and `second_seed`): the largest gap between their smoothed curves
    (trailing mean over `window` steps). `other` (same seed as `reference`, another
    setting) is within the noise when its largest gap to `reference` is no larger.
    """
    a, b, c = (moving_mean(list(v), window) for v in (reference, second_seed, other))
    noise = max(abs(x - y) for x, y in zip(a, b, strict=True))
    gap = max(abs(x - y) for x, y in zip(a, c, strict=True))
    return {"window": min(int(window), len(reference)), "noise": noise, "gap": gap, "within": gap <= noise}
