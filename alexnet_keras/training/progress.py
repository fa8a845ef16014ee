"""Progress for long commands: a bar with ETA on a terminal, a plain line at most every 30 s otherwise.

* `Bar`: steps (or images) done out of a total. On a terminal it redraws one line
  in place (carriage return); on a pipe or file it writes a plain line at most
  every `PLAIN_INTERVAL` seconds, so logs stay short and free of control codes.
* `FitProgress`: a Keras callback that draws one `Bar` per epoch for `model.fit`
  (train; keras-tuner's `tuner.search(..., callbacks=[FitProgress()], verbose=0)`
  takes it as is) and ends each epoch with a line of metrics. It replaces Keras'
  own `ProgbarLogger`, whose unterminated bar line collided with our epoch lines
  (`...top5_acc: 0.0130epoch 1: 19.6 img/s here`): Keras appends its logger after
  every other callback, so their lines printed while its bar still had no newline.
* `line_safe(echo)`: wraps a line printer so it first ends any bar left open, so
  a message (an lr drop, an error) never lands on the end of a bar.
"""

import shutil
import sys
import time

import keras

PLAIN_INTERVAL = 30.0  # seconds between plain progress lines when the output is not a terminal
REDRAW_INTERVAL = 0.1  # seconds between redraws of a terminal bar (the last step always draws)
BAR_WIDTH = 24  # characters inside the brackets

_open_lines = set()  # ids of the streams whose last bar line has no newline yet


def is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def format_eta(seconds):
    """'0:07', '12:05', '1:02:03' (h:mm:ss), or '?' when unknown.

    Example:
    >>> format_eta(7), format_eta(725), format_eta(3723), format_eta(None)
    ('0:07', '12:05', '1:02:03', '?')
    """
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def end_line(stream=None):
    """Ends the bar line left open on `stream` (default: stdout and stderr), if there is one."""
    for s in [stream] if stream is not None else [sys.stdout, sys.stderr]:
        if id(s) in _open_lines:
            _open_lines.discard(id(s))
            s.write("\n")
            s.flush()


def line_safe(echo):
    """`echo` that first ends an open bar line, so its message starts on a line of its own."""

    def safe(*args, **kwargs):
        end_line()
        return echo(*args, **kwargs)

    return safe


def format_metrics(logs, keys=None):
    """'loss: 6.9081 - acc: 0.0010' from Keras logs (numbers only; `keys` picks and orders them)."""
    parts = []
    for key in keys if keys is not None else list(logs or {}):
        value = (logs or {}).get(key)
        try:
            parts.append(f"{key}: {float(value):.4f}")
        except (TypeError, ValueError):
            continue
    return " - ".join(parts)


class Bar:
    """`done` of `total` steps, as a redrawn bar on a terminal or a plain line every `interval` seconds.

    Args:
        label: what is progressing ("epoch 3/90", "evaluate").
        total: steps in all (None: unknown, no ETA).
        unit: what a step is ("steps", "images").
        stream: where to write (default: stdout at the time the bar is made).
        interval: seconds between plain lines (not a terminal).
        terminal: force the terminal (True) or plain (False) form; default: `stream.isatty()`.
        clock: seconds, for tests.
    """

    def __init__(
        self,
        label,
        total=None,
        unit="steps",
        stream=None,
        interval=PLAIN_INTERVAL,
        terminal=None,
        clock=time.monotonic,
    ):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stdout
        self.terminal = is_terminal(self.stream) if terminal is None else terminal
        self.interval = interval
        self.clock = clock
        self.start()

    def start(self, total=None):
        """(Re)starts the clock; `total` replaces the total when given."""
        if total is not None:
            self.total = total
        self.started = self.clock()
        self.last_write = self.started  # plain lines: the first one comes after `interval`, not at once
        self.last_draw = None
        self.done = 0
        self.closed = False
        return self

    def eta(self):
        """Seconds left at the rate so far; None without a total or a first step."""
        if not self.total or not self.done:
            return None
        elapsed = self.clock() - self.started
        return elapsed / self.done * max(self.total - self.done, 0)

    def text(self, suffix=""):
        """The terminal bar: 'label [=====>      ] 12/40 steps ETA 0:32 suffix'."""
        if self.total:
            filled = min(BAR_WIDTH, BAR_WIDTH * self.done // self.total)
            inside = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * (BAR_WIDTH - filled - 1)
            count = f"[{inside[:BAR_WIDTH]}] {self.done}/{self.total} {self.unit}"
        else:
            count = f"{self.done} {self.unit}"
        when = f"ETA {format_eta(self.eta())}" if self.done < (self.total or 0) else self.elapsed_text()
        return " ".join(part for part in (self.label, count, when, suffix) if part)

    def elapsed_text(self):
        return f"{format_eta(self.clock() - self.started)} elapsed"

    def plain_text(self, suffix=""):
        """One plain line: 'label: 12/40 steps (30%), 0:10 elapsed, ETA 0:32, suffix'."""
        of = f"/{self.total}" if self.total else ""
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        eta = f", ETA {format_eta(self.eta())}" if self.total else ""
        tail = f", {suffix}" if suffix else ""
        return f"{self.label}: {self.done}{of} {self.unit}{share}, {self.elapsed_text()}{eta}{tail}"

    def _draw(self, text, final=False):
        width = shutil.get_terminal_size((100, 24)).columns - 1
        self.stream.write("\r" + text[:width] + "\033[K" + ("\n" if final else ""))
        self.stream.flush()
        if final:
            _open_lines.discard(id(self.stream))
        else:
            _open_lines.add(id(self.stream))

    def update(self, done, suffix=""):
        """`done` steps finished so far; draws when due."""
        self.done = done
        now = self.clock()
        if self.terminal:
            last = self.total is not None and done >= self.total
            if last or self.last_draw is None or now - self.last_draw >= REDRAW_INTERVAL:
                self._draw(self.text(suffix))
                self.last_draw = now
        elif now - self.last_write >= self.interval:
            self.stream.write(self.plain_text(suffix) + "\n")
            self.stream.flush()
            self.last_write = now

    def close(self, suffix="", line=None):
        """Ends the bar. On a terminal the bar's last state stays on screen with `suffix`;
        `line` (if given) is written as a plain line instead, in either form."""
        if self.closed:
            return
        self.closed = True
        if self.terminal and line is None:
            self._draw(self.text(suffix), final=True)
            return
        if self.terminal:
            self.stream.write("\r\033[K")
            _open_lines.discard(id(self.stream))
        if line:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:  # an error: leave the bar where it stopped and end its line for the message
            self.closed = True
            end_line(self.stream)


class FitProgress(keras.callbacks.Callback):
    """`model.fit` progress: a bar per epoch (terminal) or a plain line every 30 s, and one line per epoch.

    Use with `fit(..., verbose=0)` (Keras' own bar off). Put it first in the
    callback list: its `on_epoch_end` then ends the bar before any later
    callback prints.

    The epoch line: 'epoch 3/90: 740 steps in 2:01 - loss: 4.2 - acc: 0.21 - ... - val_top5_acc: 0.45';
    when the output is not a terminal, Keras' header 'Epoch 3/90' opens each epoch.
    """

    def __init__(self, stream=None, interval=PLAIN_INTERVAL, terminal=None):
        super().__init__()
        self.stream, self.interval, self.terminal = stream, interval, terminal
        self.bar = None
        self.epochs = None

    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs")

    def on_epoch_begin(self, epoch, logs=None):
        of = f"/{self.epochs}" if self.epochs else ""
        self.bar = Bar(
            f"epoch {epoch + 1}{of}",
            total=self.params.get("steps"),
            stream=self.stream,
            interval=self.interval,
            terminal=self.terminal,
        )
        if not self.bar.terminal:  # Keras' own header in logs, so a pipe shows when each epoch starts
            self.bar.stream.write(f"Epoch {epoch + 1}{of}\n")
            self.bar.stream.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.update(batch + 1, format_metrics(logs))

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is None:
            return
        bar, self.bar = self.bar, None
        metrics = format_metrics(logs)
        took = format_eta(bar.clock() - bar.started)
        steps = f"{bar.done} step{'' if bar.done == 1 else 's'}"
        bar.close(line=f"{bar.label}: {steps} in {took}" + (f" - {metrics}" if metrics else ""))

    def on_train_end(self, logs=None):
        if self.bar is not None:  # fit stopped inside an epoch (stop_training)
            self.bar.close()
            self.bar = None


def fit_callbacks(verbose="auto", stream=None):
    """The progress callbacks `train` runs for a Keras-style `verbose`: "auto" (a bar on a terminal, plain
    lines otherwise), 1 (bar), 2 (plain lines), 0 (none). Returns a list (empty for 0)."""
    if verbose == 0:
        return []
    terminal = None if verbose == "auto" else verbose == 1
    return [FitProgress(stream=stream, terminal=terminal)]


def aligned_block(title, values):
    """`title:` then one 'key: value' line per entry, the values aligned (a config printed for people).

    Example:
    >>> print(aligned_block("config", {"variant": "2012", "batch_size": 128, "lr": 0.01}))
    config:
      variant:    2012
      batch_size: 128
      lr:         0.01
    """
    width = max((len(str(k)) for k in values), default=0) + 1
    lines = [f"{title}:"]
    lines += [f"  {str(k) + ':':<{width}} {'None' if v is None else v}" for k, v in values.items()]
    return "\n".join(lines)
