"""TrainingCostLogger (Keras 3): each epoch's training FLOPs at the kernels' current densities."""
from __future__ import annotations

from typing import Optional, Sequence

from keras_sdd.keras3 import flops
from keras_sdd.keras3.callback import Callback, optional


class TrainingCostLogger(Callback):
    """At each epoch end: the epoch's training FLOPs, 3 × the forward FLOPs per example at the densities of the
    pruned kernels as the epoch ended (``keras_sdd.keras3.flops``; a model without masks counts its exact zeros,
    i.e. dense) × the examples the epoch trained on, and the running total since ``fit`` began, as
    ``logs['train_flops']`` / ``logs['train_flops_cum']`` and, with ``log_dir``, TensorBoard scalars
    ``cost/train_flops`` and ``cost/train_flops_cum``.

    Examples per epoch: ``examples_per_epoch`` when given (exact); else the batches the epoch ran × ``batch_size``
    (a last partial batch counts as full); with neither, ``fit`` stops at once with a ValueError (Keras does not
    tell callbacks the batch size). ``input_shape``: the per-example input shape, for models without a single
    static Input (subclassed ones). Layer shapes are recorded once per ``fit``; densities are read every epoch."""

    def __init__(self, log_dir=None, examples_per_epoch: Optional[int] = None, batch_size: Optional[int] = None,
                 input_shape: Optional[Sequence[int]] = None):
        super().__init__(log_dir)
        self.examples_per_epoch = optional(examples_per_epoch, "examples_per_epoch")
        self.batch_size = optional(batch_size, "batch_size")
        self.input_shape = input_shape
        self.total = 0.0
        self._steps = 0
        self._costs = None

    def on_train_begin(self, logs=None):
        self.total, self._steps = 0.0, 0
        if self.examples_per_epoch is None and self.batch_size is None:
            raise ValueError("TrainingCostLogger needs examples_per_epoch= (or batch_size=): Keras does not tell a "
                             "callback the batch size")
        self._costs = flops.layer_costs(self.model, self.input_shape)

    def on_epoch_begin(self, epoch, logs=None):
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1  # with steps_per_execution > 1 Keras reports the last step of the execution

    def epoch_examples(self) -> int:
        """The examples the current epoch is counted as having trained on."""
        return self.examples_per_epoch if self.examples_per_epoch is not None else self._steps * self.batch_size

    def on_epoch_end(self, epoch, logs=None):
        epoch_flops = 3.0 * flops.forward_flops(self._costs)[0] * self.epoch_examples()
        self.total += epoch_flops
        if logs is not None:
            logs["train_flops"], logs["train_flops_cum"] = epoch_flops, self.total
        self.write_scalars({"cost/train_flops": epoch_flops, "cost/train_flops_cum": self.total}, epoch)
