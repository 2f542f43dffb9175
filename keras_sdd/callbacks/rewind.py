"""RewindCapture: keep a model's weights as they were after optimizer step k (lottery-ticket weight rewinding)."""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

from typing import Callable, Optional

from absl import logging

from keras_sdd.callbacks.base import Callback
from keras_sdd.training.retrain import Snapshot, snapshot


class RewindCapture(Callback):
    """Captures ``snapshot(model)`` once ``optimizer.iterations`` reaches ``step`` and hands it to ``on_capture``
    (also kept as ``self.weights``; ``captured_at`` is the step it was taken at).

    Keras hands control to callbacks only every ``steps_per_execution`` steps and at each epoch's end: a ``step``
    in between is taken at the next reachable one, with a warning (the study app refuses such a step up front).
    """

    def __init__(self, step: int, on_capture: Optional[Callable[[Snapshot], None]] = None):
        super().__init__()
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self.step, self.on_capture = int(step), on_capture
        self.weights: Optional[Snapshot] = None
        self.captured_at: Optional[int] = None

    def _maybe_capture(self) -> None:
        if self.weights is not None:
            return
        now = int(self.model.optimizer.iterations.numpy())
        if now >= self.step:
            if now != self.step:
                logging.warning("RewindCapture: step %d is not reachable here; captured at step %d", self.step, now)
            self.weights, self.captured_at = snapshot(self.model), now
            if self.on_capture is not None:
                self.on_capture(self.weights)

    def on_train_begin(self, logs=None):
        self.weights = self.captured_at = None
        self._maybe_capture()

    def on_train_batch_end(self, batch, logs=None):
        self._maybe_capture()
