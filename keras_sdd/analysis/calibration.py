"""Calibration of predicted probabilities: ECE, reliability bins, NLL, Brier score, distance to Bayes.

Conventions (Guo et al. 2017): the confidence of a prediction is its largest probability and it is correct when
that class is the label. ``bins`` equal-width bins split [0, 1]; bin b holds confidences in (b/B, (b+1)/B], the
first bin also holds 0. ECE = Σ_b (n_b / N)·|accuracy_b − confidence_b| over non-empty bins. The Brier score is
the multi-class one: the mean over examples of Σ_k (p_k − 1[k = y])², in [0, 2].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

COLUMNS = ("ece_clean", "ece_noisy", "test_nll", "test_brier", "bayes_gap")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable, in float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


@dataclass
class Reliability:
    """Per-bin mean confidence, accuracy and count (NaN confidence/accuracy for empty bins)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> Reliability:
    """Equal-width reliability bins of the top-class confidence."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels).reshape(-1)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = _bin_index(conf, bins)
    count = np.bincount(idx, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / count
        mean_acc = np.bincount(idx, weights=correct, minlength=bins) / count
    return Reliability(np.linspace(0.0, 1.0, bins + 1), mean_conf, mean_acc, count)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence."""
    r = reliability(probs, labels, bins)
    full = r.count > 0
    n = r.count.sum()
    return float(np.sum(r.count[full] / n * np.abs(r.accuracy[full] - r.confidence[full]))) if n else float("nan")


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels (probabilities clipped at 1e-12)."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels).reshape(-1)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over examples of Σ_k (p_k − onehot_k)²."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels).reshape(-1)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def bayes_gap(probs: np.ndarray, bayes_proba: np.ndarray) -> float:
    """Mean |p_model(y=1|x) − p_Bayes(y=1|x)| of a two-class task (seed 2 Fig. 5's distance to Bayes)."""
    probs, bayes_proba = np.asarray(probs, np.float64), np.asarray(bayes_proba, np.float64)
    if probs.shape[1] != 2 or bayes_proba.shape != probs.shape:
        raise ValueError("bayes_gap needs two-class probabilities of matching shapes")
    return float(np.mean(np.abs(probs[:, 1] - bayes_proba[:, 1])))


def calibration_metrics(logits: np.ndarray, y_clean: np.ndarray, y_noisy: np.ndarray, bins: int = 15,
                        bayes_proba: Optional[np.ndarray] = None) -> Dict[str, float]:
    """The round row's calibration columns: ECE against the clean and the noisy test labels, NLL and Brier
    against the clean labels, and the distance to the Bayes probabilities where they are known (else NaN)."""
    p = softmax(logits)
    gap = bayes_gap(p, bayes_proba) if bayes_proba is not None and p.shape[1] == 2 else float("nan")
    return {"ece_clean": ece(p, y_clean, bins), "ece_noisy": ece(p, y_noisy, bins), "test_nll": nll(p, y_clean),
            "test_brier": brier(p, y_clean), "bayes_gap": gap}
