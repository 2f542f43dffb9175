"""Accuracy and cross-entropy of a model on a split, against its noisy and its clean labels, in one pass."""
from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf


class SplitLogits:
    """A model's logits on the splits of a bundle, in stored order, without augmentation: one compiled call per
    split (an in-graph loop over batches of ``batch_size``), traced once for all splits and rounds.

    ``model.predict`` costs about 50 ms a call beyond the model's work on a CPU (a tf.data pipeline and its
    autotuning per call); a study evaluates three splits every round. The batches and ops are predict's, so the
    logits are the same. Under a ``tf.distribute`` strategy with several replicas it falls back to predict."""

    def __init__(self, model, bundle, batch_size: int):
        self.model, self.bundle, self.batch_size = model, bundle, int(batch_size)
        b = self.batch_size

        def logits(x):
            n = tf.shape(x, out_type=tf.int64)[0]
            steps = (n + b - 1) // b
            out = tf.TensorArray(tf.float32, size=tf.cast(steps, tf.int32), infer_shape=False)
            for i in tf.range(steps):
                xb = bundle.normalize(x[i * b: tf.minimum((i + 1) * b, n)])
                out = out.write(tf.cast(i, tf.int32), tf.cast(model(xb, training=False), tf.float32))
            return out.concat()
        self._logits = tf.function(logits, reduce_retracing=True)

    def __call__(self, split: str) -> np.ndarray:
        if self.model.distribute_strategy.num_replicas_in_sync > 1 or not len(self.bundle.split(split)):
            return self.model.predict(self.bundle.inputs_dataset(split, self.batch_size), verbose=0)
        return self._logits(self.bundle.raw_inputs(split)).numpy()


def logits_of(model, bundle, split: str, batch_size: int) -> np.ndarray:
    """The model's logits on a split, in stored order, without augmentation."""
    return SplitLogits(model, bundle, batch_size)(split)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax cross-entropy, computed stably in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def metrics_of(logits: np.ndarray, split) -> Dict[str, float]:
    """{noisy,clean}_{accuracy,loss} of logits on a split, and for noisy training data the share of noisy labels
    the model fits."""
    out = {
        "noisy_accuracy": accuracy(logits, split.y), "noisy_loss": cross_entropy(logits, split.y),
        "clean_accuracy": accuracy(logits, split.y_clean), "clean_loss": cross_entropy(logits, split.y_clean),
    }
    noisy = split.is_noisy
    out["memorized_fraction"] = accuracy(logits[noisy], split.y[noisy]) if noisy.any() else float("nan")
    return out


def split_metrics(model, bundle, split: str, batch_size: int) -> Dict[str, float]:
    """``metrics_of`` the model's logits on ``split``."""
    return metrics_of(logits_of(model, bundle, split, batch_size), bundle.split(split))
