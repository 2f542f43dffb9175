"""TrainingCostLogger: training FLOPs so far, sparsity-aware, to TensorBoard and the epoch logs.

Why: the papers compare pruning schedules by training compute; a pruned weight's multiply-adds are not counted.
Works in any ``model.fit``; needs nothing else of keras_sdd.
"""
from __future__ import annotations

import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)

import os
from typing import Optional

import tensorflow as tf

from keras_sdd.callbacks.base import Callback
from keras_sdd.analysis import flops


class TrainingCostLogger(Callback):
    """At each epoch end: the epoch's training FLOPs, 3 × the forward FLOPs per example at the densities of the
    model's pruning masks as the epoch ended (read every epoch: pruning during training is followed; a model
    without masks counts dense) × the examples the epoch trained on, and the running total since ``fit`` began,
    as ``logs['train_flops']`` / ``logs['train_flops_cum']`` and, with ``log_dir``, TensorBoard scalars
    ``cost/train_flops`` and ``cost/train_flops_cum``. See ``keras_sdd.analysis.flops`` for the conventions.

    Examples per epoch: ``examples_per_epoch`` when given (exact); else the batches the epoch ran × the batch
    size (``batch_size``, or ``self.params['batch_size']`` where Keras supplies it; tf_keras 2.x's ``fit`` passes
    only ``steps``), which counts a last partial batch as full; with neither, ``fit`` stops at once with a
    ValueError. No global state; reset at ``on_train_begin``, so one instance serves several fits."""

    def __init__(self, log_dir=None, examples_per_epoch: Optional[int] = None, batch_size: Optional[int] = None):
        super().__init__()
        for name, value in (("examples_per_epoch", examples_per_epoch), ("batch_size", batch_size)):
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.examples_per_epoch = None if examples_per_epoch is None else int(examples_per_epoch)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.total = 0.0
        self._batch: Optional[int] = None
        self._steps = 0
        self._writer = None
        self._supports_tf_logs = True  # the batch hook reads no logs: Keras need not convert them

    def on_train_begin(self, logs=None):
        self.total, self._steps = 0.0, 0
        self._batch = self.batch_size or (self.params or {}).get("batch_size")
        if self.examples_per_epoch is None and self._batch is None:
            raise ValueError("TrainingCostLogger needs examples_per_epoch= (or batch_size=): Keras does not tell a "
                             "callback the batch size")
        self._close()
        self._writer = tf.summary.create_file_writer(self.log_dir) if self.log_dir else None

    def on_epoch_begin(self, epoch, logs=None):
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1  # with steps_per_execution > 1 Keras reports the last step of the execution

    def epoch_examples(self) -> int:
        """The examples the current epoch is counted as having trained on."""
        return self.examples_per_epoch if self.examples_per_epoch is not None else self._steps * int(self._batch)

    def on_epoch_end(self, epoch, logs=None):
        epoch_flops = 3.0 * flops.inference_flops(self.model) * self.epoch_examples()
        self.total += epoch_flops
        if logs is not None:
            logs["train_flops"], logs["train_flops_cum"] = epoch_flops, self.total
        if self._writer is not None:
            with self._writer.as_default():
                tf.summary.scalar("cost/train_flops", epoch_flops, step=epoch)
                tf.summary.scalar("cost/train_flops_cum", self.total, step=epoch)
            self._writer.flush()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
