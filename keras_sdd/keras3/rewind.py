"""RewindCapture (Keras 3): keep a model's weights as they were after optimizer step k (lottery-ticket rewinding),
and the snapshot / restore helpers IterativeMagnitudePruning rewinds with."""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
from absl import logging
from keras import ops

from keras_sdd.keras3.callback import Callback, sync_state
from keras_sdd.keras3.kernel_masks import apply_masks, prunable_kernels, prune_root

#: All weights of the pruned model (``model.weights`` order; a DistillationModel's student), as numpy arrays.
Snapshot = List[np.ndarray]


def snapshot(model) -> Snapshot:
    """The weights of ``model`` (its student for a DistillationModel) as numpy copies."""
    return [np.array(ops.convert_to_numpy(v)) for v in prune_root(model).weights]


def restore(model, snap: Snapshot) -> None:
    """Sets the weights from ``snap`` and re-applies the pruning masks (pruned weights stay 0)."""
    root = prune_root(model)
    if len(snap) != len(root.weights):
        raise ValueError(f"the snapshot holds {len(snap)} weights, the model {len(root.weights)}")
    root.set_weights(snap)
    apply_masks(prunable_kernels(model, who="restore"))


class RewindCapture(Callback):
    """Captures ``snapshot(model)`` once ``optimizer.iterations`` reaches ``step`` and hands it to ``on_capture``
    (also kept as ``self.weights``; ``captured_at`` is the step it was taken at). Keras hands control to callbacks
    only every ``steps_per_execution`` steps: a ``step`` in between is taken at the next reachable one, with a
    warning. The step count is followed from the batch index, so JAX's state is synced only to capture."""

    def __init__(self, step: int, on_capture: Optional[Callable[[Snapshot], None]] = None):
        super().__init__()
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self.step, self.on_capture = int(step), on_capture
        self.weights: Optional[Snapshot] = None
        self.captured_at: Optional[int] = None
        self._epoch_start = 0

    def _maybe_capture(self, now: int) -> None:
        if self.weights is not None or now < self.step:
            return
        if now != self.step:
            logging.warning("RewindCapture: step %d is not reachable here; captured at step %d", self.step, now)
        sync_state(self.model)
        self.weights, self.captured_at = snapshot(self.model), now
        if self.on_capture is not None:
            self.on_capture(self.weights)

    def on_train_begin(self, logs=None):
        self.weights = self.captured_at = None
        self._maybe_capture(int(ops.convert_to_numpy(self.model.optimizer.iterations)))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        if self.weights is None:
            self._maybe_capture(self._epoch_start + int(batch) + 1)
