"""Synthetic label noise (pure numpy, deterministic per seed).

Exactly ``round(rate * N)`` labels are chosen, so the realised rate equals the requested one up to rounding.
Two conventions exist for what happens to a chosen label, and both are legitimate:

- ``symmetric`` (seed paper 1, He et al. 2022): it becomes one of the *other* K−1 classes, so the wrong-label
  fraction is ε;
- ``uniform`` (OpenLTH, which seed paper 2 ran): it is redrawn uniformly from *all* K classes, so it may keep its
  true class and the wrong-label fraction is ≈ ε·(K−1)/K (≈ ε/2 on a two-class task).
"""
from __future__ import annotations

import numpy as np

from keras_sdd.errors import ConfigError

NOISE_TYPES = ("none", "symmetric", "uniform", "pairflip")


def _check(labels, rate: float, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    if not 0.0 <= float(rate) < 1.0:
        raise ConfigError(f"noise rate must lie in [0, 1), got {rate}")
    if num_classes < 2 and rate > 0:
        raise ConfigError(f"label noise needs at least 2 classes, got {num_classes}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError(f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def _flip_positions(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The ``round(rate * n)`` positions to corrupt, chosen uniformly without replacement."""
    return rng.choice(n, size=int(round(rate * n)), replace=False)


def symmetric_noise(labels, rate: float, num_classes: int, seed) -> np.ndarray:
    """Give exactly ``round(rate*N)`` examples a wrong label drawn uniformly from the other ``K-1`` classes."""
    labels = _check(labels, rate, num_classes)
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    pos = _flip_positions(labels.size, rate, rng)
    shift = rng.integers(1, num_classes, size=pos.size) if pos.size else np.zeros(0, np.int64)
    noisy[pos] = (labels[pos] + shift) % num_classes
    return noisy


def uniform_noise(labels, rate: float, num_classes: int, seed) -> np.ndarray:
    """OpenLTH's randomisation: exactly ``round(rate*N)`` examples get a label redrawn uniformly from all ``K``
    classes (their own included), so about ``rate·(K−1)/K`` of all labels end up wrong."""
    labels = _check(labels, rate, num_classes)
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    pos = _flip_positions(labels.size, rate, rng)
    noisy[pos] = rng.integers(0, num_classes, size=pos.size) if pos.size else np.zeros(0, np.int64)
    return noisy


def expected_wrong_fraction(noise_type: str, rate: float, num_classes: int) -> float:
    """The share of labels expected to differ from the true ones: ε for symmetric and pairflip, ε·(K−1)/K for
    uniform (a redrawn label keeps its class with probability 1/K), 0 without noise."""
    if noise_type == "none":
        return 0.0
    if noise_type == "uniform":
        return float(rate) * (num_classes - 1) / num_classes
    return float(rate)


def pairflip_noise(labels, rate: float, num_classes: int, seed) -> np.ndarray:
    """Move exactly ``round(rate*N)`` examples to the next class, ``y -> (y + 1) mod K``."""
    labels = _check(labels, rate, num_classes)
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    pos = _flip_positions(labels.size, rate, rng)
    noisy[pos] = (labels[pos] + 1) % num_classes
    return noisy


def inject(labels, noise_type: str, rate: float, num_classes: int, seed) -> np.ndarray:
    """Dispatch on ``noise_type`` ('none' | 'symmetric' | 'uniform' | 'pairflip'); returns a new int64 array."""
    if noise_type == "none" or (noise_type in NOISE_TYPES and rate == 0):
        return _check(labels, 0.0, num_classes).copy()
    if noise_type == "symmetric":
        return symmetric_noise(labels, rate, num_classes, seed)
    if noise_type == "uniform":
        return uniform_noise(labels, rate, num_classes, seed)
    if noise_type == "pairflip":
        return pairflip_noise(labels, rate, num_classes, seed)
    raise ConfigError(f"unknown noise_type {noise_type!r}; valid choices: {', '.join(NOISE_TYPES)}")
