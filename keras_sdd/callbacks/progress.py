"""EpochProgress: a progress line inside a long ``model.fit`` — ``epoch k/E``, rate and time left — a few a minute.

A study round can train for hours (160 CIFAR epochs); Keras' own ``verbose=1`` bar is one line per batch in a
log file, and ``verbose=0`` is silence. This callback prints one line at most every ``every_secs`` seconds
(default 20: three a minute), checked at every epoch end and, without touching the logs (no device sync), at
every batch end, so a line comes at least every ``every_secs`` + one step while training runs. The line goes
through Keras' own ``print_msg`` (stdout, or absl logging when Keras is told to), or a given ``log`` function.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import time
from typing import Callable, Optional

import tf_keras
from tf_keras.src.utils.io_utils import print_msg  # Keras' own printing (absl logging when Keras is told to)


def fmt_secs(s: float) -> str:
    """12s, 3m05s, 2h07m."""
    s = int(round(max(s, 0.0)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class EpochProgress(tf_keras.callbacks.Callback):
    """``[label: ]epoch k/E, 2.1 epochs/s, ~1m20s left in this fit`` at most every ``every_secs`` seconds.

    ``k`` counts finished epochs (``initial_epoch`` included), ``E`` is ``fit``'s ``epochs``; the rate is over
    the epochs run since this ``fit`` began (a resumed fit does not count the restored ones), and the time left is
    the remaining epochs at that rate. ``clock`` (seconds, monotonic) can be replaced in tests."""

    def __init__(self, every_secs: float = 20.0, label: str = "", log: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every, self.label, self.clock = float(every_secs), label, clock
        self.log = log
        self._supports_tf_logs = True   # the batch hook never reads the logs: Keras hands them over unconverted
        self.lines = 0

    def on_train_begin(self, logs=None):
        self._t0 = self._last = self.clock()
        self._done = self._first = None
        self._epochs = int(self.params.get("epochs") or 0)
        self._steps = self.params.get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        if self._first is None:
            self._first = epoch
        self._current = epoch

    def _emit(self, done: float) -> None:
        now = self.clock()
        ran = done - (self._first or 0)
        elapsed = now - self._t0
        head = f"{self.label}: " if self.label else ""
        whole = int(done)
        rate = ""
        if ran > 0 and elapsed > 0:
            per = elapsed / ran
            speed = f"{ran / elapsed:.1f} epochs/s" if per < 1 else f"{fmt_secs(per)}/epoch"
            rate = f", {speed}, ~{fmt_secs(per * (self._epochs - done))} left in this fit"
        part = "" if done == whole else f" (+{100 * (done - whole):.0f}% of epoch {whole + 1})"
        line = f"{head}epoch {whole}/{self._epochs}{part}{rate}"
        (self.log or print_msg)(line)
        self.lines += 1
        self._last = now

    def on_train_batch_end(self, batch, logs=None):
        if self.clock() - self._last >= self.every and self._steps:
            self._emit(self._current + min((batch + 1) / self._steps, 0.999))

    def on_epoch_end(self, epoch, logs=None):
        if self.clock() - self._last >= self.every and epoch + 1 < self._epochs:
            self._emit(epoch + 1)
