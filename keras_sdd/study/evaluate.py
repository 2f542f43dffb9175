"""Accuracy and cross-entropy of a model on a split, against its noisy and its clean labels, in one pass."""
from __future__ import annotations

from typing import Dict

import numpy as np


def logits_of(model, bundle, split: str, batch_size: int) -> np.ndarray:
    """The model's logits on a split, in stored order, without augmentation."""
    return model.predict(bundle.inputs_dataset(split, batch_size), verbose=0)


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
