"""Training on several processes or hosts: data parallelism through JAX's distributed runtime.

One process per host (or per GPU): each one runs `alexnet-keras train` with the same
flags plus where the coordinator (process 0) listens, how many processes there are and
which one it is, from the flags `--coordinator HOST:PORT --num-processes N --process-id I`
or from Keras' own environment variables (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, coordinator
first, `KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID`); a flag wins.

`initialize(config)` joins the cluster as `keras.distribution.initialize` does (that is a call
of `jax.distributed.initialize` and nothing else), with waits that end. JAX's defaults (300 s
to start, a 100 s heartbeat, and a C++ abort of every process when one fails) leave a
worker hanging for minutes and then print a stack trace. Here the start-up wait is
`STARTUP_SECONDS` (or `$ALEXNET_KERAS_STARTUP_TIMEOUT`); the tasks are recoverable (one
failing does not abort the others), and a watchdog thread asks the coordination service
every `BEAT_SECONDS` which processes are alive: when one is gone (its connections close
when it is killed), the others stop with one line and exit `LOST_EXIT`; relaunch all of
them with `--resume`. A lost coordinator (process 0) ends the others at once, from C++.
`finish(0)` ends a run in order: every process waits for the last, then process 0, which
hosts the coordination service, leaves last.

TensorFlow's `MultiWorkerMirroredStrategy` fails inside Keras 3's `fit`
(keras-team/keras#20585, open), so several processes need the JAX backend.
"""

import atexit
import dataclasses
import os
import sys
import threading
import time

from ..errors import UserError

ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"  # Keras' names (keras.distribution.initialize)
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
ENV_STARTUP = "ALEXNET_KERAS_STARTUP_TIMEOUT"  # seconds to wait for every process to join
STARTUP_SECONDS = 120  # hosts of a batch job start within this of each other
BEAT_SECONDS = 1  # how often the watchdog asks the coordination service which processes are alive
# JAX's heartbeat: how long a host that vanished without closing its connections (a power cut)
# counts as alive; a killed process closes them and is missed within BEAT_SECONDS.
JAX_HEARTBEAT_SECONDS = 30
BARRIER_SECONDS = 600  # at the end, how long the first process to finish waits for the last
LOST_EXIT = 3  # another process of the run was lost: relaunch every process with --resume
TF_MULTI_WORKER_BUG = "keras-team/keras#20585"
_END_BARRIER = "alexnet-keras/end"
PROG = "alexnet-keras"


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process sits in a multi-process run."""

    coordinator: str  # HOST:PORT of process 0
    num_processes: int
    process_id: int
    source: str  # "flags" or "environment", for messages

    def describe(self, batch_size=None):
        text = f"process {self.process_id} of {self.num_processes} (coordinator {self.coordinator})"
        if batch_size is not None:
            text += f"; global batch {batch_size}, {batch_size // self.num_processes} images per process"
        return text


def _env_int(environ, name, low, what):
    value = environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        number = int(value.strip())
    except ValueError:
        number = None
    if number is None or number < low:
        raise UserError(f"{name}={value!r} is not a whole number >= {low}; set it to {what}, or unset it")
    return number


def _check_address(address, name):
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(
            f"{name} {address!r} is not HOST:PORT (e.g. 10.0.0.1:1234): give process 0's host and a free port"
        )
    return address.strip()


def cluster(config, environ=None):
    """The `Cluster` this process belongs to, or None for a single-process run.

    Flags (`config.coordinator`, `.num_processes`, `.process_id`) win over Keras'
    environment variables. Raises `UserError` for incomplete or inconsistent settings.
    """
    environ = os.environ if environ is None else environ
    from_flags = any(v is not None for v in (config.coordinator, config.num_processes, config.process_id))
    num = config.num_processes
    if num is None:
        num = _env_int(environ, ENV_NUM_PROCESSES, 1, "the number of processes, e.g. 2")
    pid = config.process_id
    if pid is None:
        pid = _env_int(environ, ENV_PROCESS_ID, 0, "this process's index, 0 for the coordinator")
    if config.coordinator is not None and (not isinstance(config.coordinator, str) or not config.coordinator.strip()):
        raise UserError(f"bad value for coordinator: {config.coordinator!r} (expected HOST:PORT, e.g. 10.0.0.1:1234)")
    if config.coordinator is not None:
        addresses, address_name = [config.coordinator], "--coordinator"
    else:
        raw = environ.get(ENV_ADDRESSES, "").strip()
        addresses, address_name = ([a.strip() for a in raw.split(",")] if raw else []), ENV_ADDRESSES
    source = "flags" if from_flags else "environment"
    if num is None or num == 1:
        if pid not in (None, 0):
            raise UserError(
                f"process id {pid} needs --num-processes (or {ENV_NUM_PROCESSES}) greater than {pid}; "
                "leave the id out for a single-process run"
            )
        return None
    if not addresses:
        raise UserError(
            f"{num} processes need the coordinator's address: give --coordinator HOST:PORT (process 0's host "
            f"and a free port) or set {ENV_ADDRESSES}"
        )
    if pid is None:
        raise UserError(
            f"{num} processes need this process's index: give --process-id I (0 to {num - 1}; 0 is the "
            f"coordinator) or set {ENV_PROCESS_ID}"
        )
    if not 0 <= pid < num:
        raise UserError(f"process id {pid} is out of range for {num} processes (0 to {num - 1})")
    if len(addresses) > 1 and len(addresses) != num:
        raise UserError(
            f"{ENV_ADDRESSES} lists {len(addresses)} addresses but there are {num} processes; list one "
            "per process (coordinator first) or only the coordinator's"
        )
    coordinator = _check_address(addresses[0], address_name)
    return Cluster(coordinator, num, pid, source)


def startup_seconds(environ=None):
    """How long `initialize` waits for every process to join."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_STARTUP)
    if value is None:
        return STARTUP_SECONDS
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise UserError(
            f"{ENV_STARTUP}={value!r} is not a whole number of seconds >= 1; unset it for {STARTUP_SECONDS}"
        )
    return seconds


def refuse_tf_multi_worker(config, environ=None, tf_config=True):
    """TF's multi-worker training does not work with Keras 3 `fit`: one line pointing to the JAX path.

    `tf_config`: whether a `TF_CONFIG` variable counts too (it describes a TF cluster only)."""
    environ = os.environ if environ is None else environ
    what = None
    if getattr(config, "strategy", None) == "multi-worker":
        what = "--strategy multi-worker"
    elif tf_config and environ.get("TF_CONFIG"):
        what = "TF_CONFIG (a TensorFlow multi-worker cluster)"
    if what:
        raise UserError(
            f"{what} is not supported: tf.distribute.MultiWorkerMirroredStrategy fails inside Keras 3's fit "
            f"({TF_MULTI_WORKER_BUG}); train on several hosts with the JAX backend instead: KERAS_BACKEND=jax "
            "alexnet-keras train --coordinator HOST:PORT --num-processes N --process-id I (unset TF_CONFIG)"
        )


def check_batch(batch_size, num_processes):
    """The global batch is split evenly over the processes; returns the per-process batch."""
    if batch_size % num_processes:
        raise UserError(
            f"batch size {batch_size} does not divide across {num_processes} processes; give a --batch-size "
            f"that is a multiple of {num_processes} (e.g. {num_processes * max(1, round(batch_size / num_processes))})"
        )
    return batch_size // num_processes


# --- the running cluster ------------------------------------------------------------
_state = {"cluster": None, "watchdog": None}


def active():
    """The `Cluster` this process joined, or None."""
    return _state["cluster"]


def process_index():
    """This process's index in the run (0 when single-process)."""
    c = _state["cluster"]
    return c.process_id if c is not None else 0


def process_count():
    """How many processes train together (1 when single-process)."""
    c = _state["cluster"]
    return c.num_processes if c is not None else 1


def is_chief():
    """Whether this process owns the run directory: only process 0 of a multi-process run."""
    return process_index() == 0


def whole_batches(ds, batch_size):
    """A batched validation set in whole global batches only, under several processes.

    Every process must run the same number of equal steps: a last partial batch splits
    unevenly (e.g. 4 + 2 images against 4) and one process waits for the other forever.
    So the last partial batch is left out (at most `batch_size - 1` images).
    """
    if process_count() == 1:
        return ds
    return ds.unbatch().batch(batch_size, drop_remainder=True)


def _no_gpu():
    # Decided before JAX starts its backends (they must not start before distributed.initialize).
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return "cuda" not in platforms and "gpu" not in platforms and "rocm" not in platforms
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    import importlib.util

    return not any(importlib.util.find_spec(m) for m in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin"))


def initialize(config, environ=None):
    """Joins the multi-process run that `config` and the environment describe.

    Call before anything starts JAX's devices. Returns the `Cluster`, or None for a
    single-process run (nothing happens). A second call returns the first's result.
    Raises `UserError` for bad settings, a backend other than JAX, or a coordinator
    that cannot be reached within the start-up wait.
    """
    if _state["cluster"] is not None:
        return _state["cluster"]
    import keras

    backend = keras.backend.backend()
    refuse_tf_multi_worker(config, environ, tf_config=backend == "tensorflow")
    c = cluster(config, environ)
    if c is None:
        return None
    if backend != "jax":
        raise UserError(
            f"{c.num_processes} processes train on the JAX backend only (KERAS_BACKEND is {backend!r}; "
            f"TensorFlow's multi-worker training fails inside Keras 3's fit, {TF_MULTI_WORKER_BUG}): "
            "set KERAS_BACKEND=jax"
        )
    check_batch(config.batch_size, c.num_processes)
    wait = startup_seconds(environ)
    import jax

    if _no_gpu():
        # Cross-process collectives between CPU devices need gloo (the default has none).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # Recoverable tasks: a process that dies no longer aborts the others from C++ (JAX's default
    # when a task fails); the watchdog sees it leave the live set and ends this one in one line.
    jax.config.update("jax_enable_recoverability", True)
    # JAX's preemption service catches SIGTERM (to checkpoint at a sync point), so `kill`, `timeout`
    # and a batch system's first signal did not stop a process; this package saves per epoch instead.
    jax.config.update("jax_enable_preemption_service", False)
    # JAX aborts the process from C++ when it cannot reach the coordinator or the others do not
    # come; meeting first over a plain socket makes those one-line errors after `wait` seconds.
    rendezvous(c, wait)
    try:
        jax.distributed.initialize(
            c.coordinator,
            num_processes=c.num_processes,
            process_id=c.process_id,
            initialization_timeout=max(wait, RENDEZVOUS_TO_JAX_SECONDS),
            heartbeat_timeout_seconds=JAX_HEARTBEAT_SECONDS,
            shutdown_timeout_seconds=BARRIER_SECONDS,
        )
    except Exception as e:  # noqa: BLE001 -- XlaRuntimeError, RuntimeError, ValueError: all mean "did not join"
        _reset_jax()
        raise UserError(_join_error(c, wait, e)) from None
    _state["cluster"] = c
    _state["watchdog"] = _Watchdog(c)
    _state["watchdog"].start()
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    return c


def _join_error(c, wait, e):
    text = " ".join(str(e).split())[:200]
    return f"process {c.process_id} of {c.num_processes} could not join JAX's distributed runtime at {c.coordinator}: {text}"


# --- the rendezvous: every process has arrived before JAX starts ---------------------------
RENDEZVOUS_TO_JAX_SECONDS = 60  # after the rendezvous, JAX's own start-up wait (all are up by then)
_HELLO = b"alexnet-keras rendezvous "


def _host_port(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def rendezvous(c, wait):
    """Process 0 listens on the coordinator's port until every other process has said
    hello, then tells them to go and frees the port for JAX's coordination service.
    `UserError` (one line) when that does not happen within `wait` seconds."""
    if c.process_id == 0:
        _rendezvous_host(c, wait)
    else:
        _rendezvous_guest(c, wait)


def _rendezvous_host(c, wait):
    import socket

    _, port = _host_port(c.coordinator)
    try:
        if socket.has_dualstack_ipv6():
            server = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        else:
            server = socket.create_server(("", port))
    except OSError as e:
        raise UserError(
            f"process 0 cannot listen on port {port} ({e.strerror or e}); give every process a --coordinator "
            "with a free port"
        ) from None
    guests, deadline = {}, time.monotonic() + wait
    try:
        while len(guests) < c.num_processes - 1:
            server.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                conn, _ = server.accept()
            except TimeoutError:
                missing = sorted(set(range(1, c.num_processes)) - set(guests))
                raise UserError(
                    f"not every process joined within {wait} s: process(es) {', '.join(map(str, missing))} of "
                    f"{c.num_processes} did not reach {c.coordinator}; start them with the same --coordinator "
                    f"and --num-processes, or raise {ENV_STARTUP}"
                ) from None
            conn.settimeout(5)
            try:
                line = conn.recv(256)
            except OSError:
                conn.close()
                continue
            parts = line[len(_HELLO) :].split() if line.startswith(_HELLO) else []
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                conn.close()  # not one of ours (a port scanner, another program)
                continue
            pid, count = int(parts[0]), int(parts[1])
            if count != c.num_processes or pid in guests or not 0 < pid < c.num_processes:
                conn.sendall(b"refused %d\n" % c.num_processes)
                conn.close()
                continue
            guests[pid] = conn
        for conn in guests.values():
            conn.sendall(b"go\n")
        for conn in guests.values():  # the guests close first, so the port is free for JAX at once
            try:
                conn.recv(16)
            except OSError:
                pass
    finally:
        for conn in guests.values():
            conn.close()
        server.close()


def _rendezvous_guest(c, wait):
    import socket

    host, port = _host_port(c.coordinator)
    deadline = time.monotonic() + wait
    reached = False
    while time.monotonic() < deadline:
        try:
            conn = socket.create_connection((host, port), timeout=max(0.01, min(2, deadline - time.monotonic())))
        except OSError:
            time.sleep(0.5)
            continue
        reached = True
        with conn:
            try:
                conn.sendall(_HELLO + b"%d %d\n" % (c.process_id, c.num_processes))
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                answer = conn.recv(64)
            except OSError:
                answer = b""
            if answer.startswith(b"go"):
                return
            if answer.startswith(b"refused"):
                theirs = answer.split()[1].decode() if len(answer.split()) > 1 else "?"
                raise UserError(
                    f"the coordinator {c.coordinator} refused process id {c.process_id} of {c.num_processes}: it "
                    f"expects {theirs} processes, or another process already joined with this id; give every "
                    "process the same --num-processes and its own --process-id"
                )
        time.sleep(0.5)
    if reached:
        raise UserError(
            f"the coordinator {c.coordinator} did not start the run within {wait} s: are all "
            f"{c.num_processes} processes started? (or raise {ENV_STARTUP})"
        )
    raise UserError(
        f"cannot reach the coordinator {c.coordinator} within {wait} s: start process 0 there (and check the "
        f"host and port, the same on every process), or raise {ENV_STARTUP}"
    )


def _reset_jax():
    # A failed join may leave JAX's client half made; drop it so the interpreter exits cleanly.
    try:
        from jax._src import distributed

        distributed.global_state.client = None
        distributed.global_state.service = None
    except Exception:  # noqa: BLE001 -- private API; at worst the exit is slower
        pass


# --- losing a process ----------------------------------------------------------------
_LOST_SIGNS = (
    "gloo",
    "connection closed by peer",
    "connection reset",
    "heartbeat",
    "coordination service",
    "unavailable:",
    "socket closed",
)


def lost_peer_error(exc):
    """Whether an exception means another process of the run went away."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(sign in text for sign in _LOST_SIGNS)


def die(message, code=LOST_EXIT):
    """Prints `message` as the one error line and ends this process at once.

    A normal exit would wait in JAX's shutdown barrier for processes that are gone,
    then abort with a C++ stack trace; `os._exit` skips it.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 -- a closed pipe must not stop the exit
            pass
    os.write(2, f"{PROG}: error: {message}\n".encode())
    os._exit(code)


def _lost_message(c, what):
    return (
        f"process {c.process_id} of {c.num_processes}: {what}; the run stopped (its last finished epoch is kept): "
        "relaunch every process with --resume"
    )


def _excepthook(kind, exc, tb):
    c = _state["cluster"]
    if c is not None and exc is not None and not isinstance(exc, KeyboardInterrupt) and lost_peer_error(exc):
        first = " ".join(str(exc).split())[:160]
        die(_lost_message(c, f"lost contact with another process ({first})"))
    sys.__excepthook__(kind, exc, tb)
    if c is not None:  # the others wait in a collective for this process: let the watchdog tell them
        die("this process failed (above); the other processes stop too", code=1)


def finish(code):
    """Ends this process's part of a multi-process run (a no-op for one process).

    Exit code 0: waits until every process got here, then leaves JAX's distributed
    runtime in order (process 0, which hosts the coordination service, last).
    Any other code: leaves at once; the others learn it from their watchdogs.
    """
    watchdog, c = _state["watchdog"], _state["cluster"]
    if watchdog is None or watchdog.finished.is_set():
        return
    if code:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)
    from jax._src import distributed

    client = distributed.global_state.client
    client.wait_at_barrier(_END_BARRIER, BARRIER_SECONDS * 1000)
    watchdog.finished.set()  # from here on, processes leaving is expected
    if c.process_id == 0:
        # The others must disconnect before the service they talk to goes away.
        everyone = list(range(c.num_processes))  # the service wants the asking process in the list
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _live(client, everyone) - {0}:
            time.sleep(0.2)
    distributed.shutdown()


def _live(client, processes):
    return set(client.get_live_nodes(processes))


def _at_exit():
    # A normal interpreter exit (e.g. a notebook or script that called train): same as finish(0).
    if _state["watchdog"] is not None and not _state["watchdog"].finished.is_set():
        finish(0)


class _Watchdog(threading.Thread):
    """Asks the coordination service every `BEAT_SECONDS` which processes are alive;
    one that is gone ends this process with one line (`LOST_EXIT`)."""

    def __init__(self, c):
        super().__init__(name="alexnet-keras-watchdog", daemon=True)
        self.c = c
        self.finished = threading.Event()

    def run(self):
        from jax._src import distributed

        c, client = self.c, distributed.global_state.client
        everyone = list(range(c.num_processes))
        while not self.finished.wait(BEAT_SECONDS):
            try:
                gone = sorted(set(everyone) - _live(client, everyone))
            except Exception as e:  # noqa: BLE001 -- the coordination service stopped answering
                if self.finished.is_set():
                    return
                die(_lost_message(c, f"lost the coordinator (process 0): {' '.join(str(e).split())[:120]}"))
            if gone and not self.finished.is_set():
                names = ", ".join(str(p) for p in gone)
                die(_lost_message(c, f"process {names} stopped (killed, crashed or its host went away)"))
