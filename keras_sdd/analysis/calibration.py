"""Calibration of predicted probabilities: ECE, reliability bins, NLL, Brier score, distance to Bayes (pure numpy).

Conventions (Guo et al. 2017):
- The confidence of a prediction is its largest probability; it is correct when that class is the label (ties:
  the first largest class, as ``argmax``).
- ``bins`` equal-width bins split [0, 1]; bin b holds confidences in (b/B, (b+1)/B], right-closed, with 0 in the
  first bin. The edges are the floats ``b / B``: a confidence exactly on an edge goes to the *lower* bin (0.5 with
  two bins is in (0, 0.5]), as in Guo et al.'s I_m = ((m−1)/M, m/M] and Kumar et al.'s ``uncertainty-calibration``.
- ECE = Σ_b (n_b / N)·|accuracy_b − confidence_b| over the non-empty bins; empty bins contribute nothing.
- Class-wise ECE (Kull et al. 2019; the "class-averaged" reliability curves of Arora et al. 2023): for every class
  k, the same binning of p_k against 1[y = k]; the mean over classes of those ECEs.
- NLL: mean of −log p_y; from logits through a stable log-softmax; from probabilities with p clipped at 1e-12.
- Brier: the multi-class score, mean over examples of Σ_k (p_k − 1[k = y])², in [0, 2] (not divided by the number
  of classes; for two classes it is twice the binary Brier score (p_1 − y)²).
Every function takes probabilities; ``from_logits=None`` tells them apart (rows of non-negative numbers summing
to 1 within 1e-2 are probabilities, anything else logits), ``True`` / ``False`` says it. A 1-D array is a
two-class task's P(y = 1 | x) (or its logit). Labels are integers in [0, K), or one-hot rows.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

#: The round row's calibration columns, as ``calibration_metrics`` returns them.
COLUMNS = ("ece_clean", "ece_noisy", "test_nll", "test_brier", "bayes_gap")
NLL_CLIP = 1e-12
_SUM_TOLERANCE = 1e-2  # float16 probabilities (saved predictions) sum to 1 within ~1e-3


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax in float64, stable (the row maximum is subtracted first)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(logits)) in float64, stable (log-sum-exp)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _two_class(p1: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - p1, p1], axis=1)


def _is_distribution(x: np.ndarray) -> bool:
    if x.ndim == 1:
        return bool(np.all((x >= 0) & (x <= 1)))
    return bool(np.all(x >= 0) and np.allclose(x.sum(axis=1), 1.0, rtol=0, atol=_SUM_TOLERANCE))


def as_probabilities(x: np.ndarray, from_logits: Optional[bool] = None) -> np.ndarray:
    """(N, K) float64 probabilities from probabilities or logits (see the module's conventions)."""
    x = np.asarray(x, np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"predictions must be 1-D (two-class) or 2-D (examples, classes), got shape {x.shape}")
    logits = (not _is_distribution(x)) if from_logits is None else bool(from_logits)
    if x.ndim == 1:
        return _two_class(1.0 / (1.0 + np.exp(-x)) if logits else x)
    return softmax(x) if logits else x


def _labels(labels: np.ndarray, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == k and k > 1:  # one-hot (or soft) rows
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if len(y) != n:
        raise ValueError(f"{len(y)} labels for {n} predictions")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integer class indices")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}), got [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def _checked(probs, labels, from_logits):
    p = as_probabilities(probs, from_logits)
    return p, _labels(labels, p.shape[0], p.shape[1])


def _check_bins(bins: int) -> int:
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins}")
    return int(bins)


def bin_edges(bins: int) -> np.ndarray:
    """The ``bins + 1`` edges b / bins (each the correctly rounded float of the fraction)."""
    return np.arange(_check_bins(bins) + 1, dtype=np.float64) / bins


def bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each confidence: b such that b/B < c <= (b+1)/B; 0 for c = 0 (and below), B−1 above 1."""
    idx = np.searchsorted(bin_edges(bins), np.asarray(confidence, np.float64), side="left") - 1
    return np.clip(idx, 0, bins - 1)


@dataclass(frozen=True)
class Reliability:
    """Per bin: mean confidence, accuracy (NaN where empty) and count; ``edges`` has ``bins + 1`` entries."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        n = self.count.sum()
        if not n:
            return float("nan")
        full = self.count > 0
        return float(np.sum(self.count[full] / n * np.abs(self.accuracy[full] - self.confidence[full])))


def _binned(values: np.ndarray, hits: np.ndarray, bins: int) -> Reliability:
    idx = bin_index(values, bins)
    count = np.bincount(idx, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=values, minlength=bins) / count
        acc = np.bincount(idx, weights=hits, minlength=bins) / count
    return Reliability(bin_edges(bins), conf, acc, count)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15, *,
                from_logits: Optional[bool] = None) -> Reliability:
    """Equal-width reliability bins of the top-class confidence (a reliability diagram's data)."""
    p, y = _checked(probs, labels, from_logits)
    bins = _check_bins(bins)
    return _binned(p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64), bins)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15, *, from_logits: Optional[bool] = None) -> float:
    """Expected calibration error of the top-class confidence (NaN for no examples)."""
    return reliability(probs, labels, bins, from_logits=from_logits).ece


@dataclass(frozen=True)
class ClasswiseReliability:
    """Per class k (rows) and bin (columns): mean p_k, frequency of y = k, count. ``confidence`` / ``accuracy``
    averaged over the classes present in a bin give the class-averaged reliability curve."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def per_class_ece(self) -> np.ndarray:
        return np.array([Reliability(self.edges, c, a, n).ece
                         for c, a, n in zip(self.confidence, self.accuracy, self.count)])

    @property
    def ece(self) -> float:
        return float(np.mean(self.per_class_ece)) if self.count.size and self.count.sum() else float("nan")

    def class_averaged(self) -> Reliability:
        """The class-averaged curve: per bin, the mean over classes with examples there (counts summed)."""
        with warnings.catch_warnings():  # a bin empty for every class is NaN, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            return Reliability(self.edges, np.nanmean(self.confidence, axis=0), np.nanmean(self.accuracy, axis=0),
                               self.count.sum(axis=0))


def classwise_reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15, *,
                          from_logits: Optional[bool] = None) -> ClasswiseReliability:
    """Equal-width bins of every class's probability against the indicator of that class."""
    p, y = _checked(probs, labels, from_logits)
    bins = _check_bins(bins)
    rows = [_binned(p[:, k], (y == k).astype(np.float64), bins) for k in range(p.shape[1])]
    return ClasswiseReliability(bin_edges(bins), np.array([r.confidence for r in rows]).reshape(-1, bins),
                                np.array([r.accuracy for r in rows]).reshape(-1, bins),
                                np.array([r.count for r in rows], np.int64).reshape(-1, bins))


def classwise_ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15, *,
                  from_logits: Optional[bool] = None) -> float:
    """Mean over classes of the ECE of p_k against 1[y = k] (class-wise / marginal ECE)."""
    return classwise_reliability(probs, labels, bins, from_logits=from_logits).ece


def nll(probs_or_logits: np.ndarray, labels: np.ndarray, *, from_logits: Optional[bool] = None) -> float:
    """Mean negative log-likelihood of the labels (exact from logits; probabilities clipped at 1e-12)."""
    x = np.asarray(probs_or_logits, np.float64)
    logits = (not _is_distribution(x)) if from_logits is None else bool(from_logits)
    if logits and x.ndim == 2:
        logp = log_softmax(x)
        y = _labels(labels, *x.shape)
        return float(-np.mean(logp[np.arange(len(y)), y])) if len(y) else float("nan")
    p, y = _checked(x, labels, logits)
    if not len(y):
        return float("nan")
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], NLL_CLIP, None))))


def brier(probs: np.ndarray, labels: np.ndarray, *, from_logits: Optional[bool] = None) -> float:
    """Multi-class Brier score: mean over examples of Σ_k (p_k − onehot_k)², in [0, 2]."""
    p, y = _checked(probs, labels, from_logits)
    if not len(y):
        return float("nan")
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def bayes_gap(probs: np.ndarray, bayes_proba: np.ndarray, *, from_logits: Optional[bool] = None) -> float:
    """Mean |p_model(y=1|x) − p_Bayes(y=1|x)| of a two-class task (Arora et al.'s distance to Bayes, Fig. 5).
    Both may be (N, 2) or (N,) P(y = 1 | x); ``bayes_proba`` is always probabilities."""
    p = as_probabilities(probs, from_logits)
    b = as_probabilities(bayes_proba, False)
    if p.shape[1] != 2 or b.shape != p.shape:
        raise ValueError(f"bayes_gap needs two-class predictions of matching shapes, got {p.shape} and {b.shape}")
    return float(np.mean(np.abs(p[:, 1] - b[:, 1]))) if len(p) else float("nan")


def calibration_metrics(logits: np.ndarray, y_clean: np.ndarray, y_noisy: Optional[np.ndarray], bins: int = 15,
                        bayes_proba: Optional[np.ndarray] = None) -> Dict[str, float]:
    """The round row's calibration columns (``COLUMNS``) from the test logits: ECE against the clean and the noisy
    test labels, NLL and Brier against the clean labels, and the distance to the Bayes probabilities of a
    two-class task whose Bayes P(y|x) is known. NaN where a column does not apply (no noisy labels given, no
    Bayes probabilities, more than two classes)."""
    logits = np.asarray(logits, np.float64)
    p = as_probabilities(logits, True)
    nan = float("nan")
    gap = bayes_gap(p, bayes_proba, from_logits=False) if bayes_proba is not None and p.shape[1] == 2 else nan
    return {"ece_clean": ece(p, y_clean, bins, from_logits=False),
            "ece_noisy": ece(p, y_noisy, bins, from_logits=False) if y_noisy is not None else nan,
            "test_nll": nll(logits, y_clean, from_logits=True), "test_brier": brier(p, y_clean, from_logits=False),
            "bayes_gap": gap}
