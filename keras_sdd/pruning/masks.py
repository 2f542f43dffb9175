"""Pruning masks as pure numpy: round targets and magnitude / random mask selection.

Kept free of TensorFlow so the selection rules (one global threshold, exact counts, never reviving a pruned
weight, deterministic ties) can be tested quickly and reused on any weight source. A mask is a float32 array
of 0/1 with its weight's shape; 0 means pruned.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Tuple

import numpy as np

from keras_sdd.errors import ConfigError

#: Slack for floating-point comparisons of sparsities (a count error is always >= 1 / total).
_EPS = 1e-12


def round_targets(prune_fraction: float = 0.2, final_sparsity: float = 0.998) -> List[float]:
    """Sparsity after each IMP round: ``1 - (1 - prune_fraction) ** k`` for k = 1..K.

    K is the smallest k that reaches ``final_sparsity``; the defaults give 28 rounds ending at ~0.9981.
    """
    if not 0.0 < prune_fraction < 1.0:
        raise ConfigError(f"prune_fraction must be in (0, 1), got {prune_fraction!r}")
    if not 0.0 < final_sparsity < 1.0:
        raise ConfigError(f"final_sparsity must be in (0, 1), got {final_sparsity!r}")
    targets: List[float] = []
    k = 0
    while True:
        k += 1
        target = 1.0 - (1.0 - prune_fraction) ** k
        targets.append(target)
        if target >= final_sparsity - _EPS:
            return targets


def count_for(target_sparsity: float, size: int) -> int:
    """Number of weights pruned at ``target_sparsity`` out of ``size``: round half up (not half to even)."""
    return int(math.floor(target_sparsity * size + 0.5))


def _check(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], target: float) -> None:
    if not 0.0 <= target <= 1.0:
        raise ConfigError(f"target sparsity must be in [0, 1], got {target!r}")
    if set(weights) != set(masks):
        raise ConfigError(f"weights and masks name different tensors: {sorted(set(weights) ^ set(masks))}")
    for key in weights:
        if np.shape(weights[key]) != np.shape(masks[key]):
            raise ConfigError(f"{key}: weight shape {np.shape(weights[key])} != mask shape {np.shape(masks[key])}")


def _survivors(masks: Mapping[str, np.ndarray], keys: List[str]) -> List[np.ndarray]:
    return [np.asarray(masks[k]).reshape(-1) != 0 for k in keys]


def _prune_flat(masks: Mapping[str, np.ndarray], keys: List[str], chosen: np.ndarray) -> Dict[str, np.ndarray]:
    """New masks with the flat positions ``chosen`` (over the concatenation of ``keys``) set to 0."""
    flat = np.concatenate([np.asarray(masks[k], np.float32).reshape(-1) != 0 for k in keys]).astype(np.float32)
    flat[chosen] = 0.0
    out: Dict[str, np.ndarray] = {}
    start = 0
    for k in keys:
        shape = np.shape(masks[k])
        size = int(np.prod(shape, dtype=np.int64))
        out[k] = flat[start:start + size].reshape(shape).copy()
        start += size
    return out


def _extra_count(masks: Mapping[str, np.ndarray], keys: List[str], target: float) -> Tuple[int, np.ndarray]:
    """How many more weights to prune to reach ``target`` over ``keys``, and the flat survivor positions."""
    alive = np.concatenate(_survivors(masks, keys)) if keys else np.zeros(0, bool)
    total = alive.size
    pruned = total - int(alive.sum())
    wanted = count_for(target, total)
    if wanted < pruned:  # compared in weights, so a target rounded up last round is not refused
        raise ConfigError(
            f"target sparsity {target:.6f} ({wanted} weights) is below the current sparsity "
            f"{pruned / total:.6f} ({pruned} of {total}); pruning never revives weights")
    return wanted - pruned, np.flatnonzero(alive)


def global_magnitude_masks(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
                           target_sparsity: float) -> Dict[str, np.ndarray]:
    """Prune the smallest surviving |w| across ALL tensors (one global threshold) up to ``target_sparsity``.

    Exactly ``round(target * total)`` weights end up pruned; pruned weights stay pruned; ties are broken by
    the flat index over the tensors in the mapping's order (stable sort), so the result is deterministic.
    """
    _check(weights, masks, target_sparsity)
    keys = list(weights)
    extra, alive = _extra_count(masks, keys, target_sparsity)
    if not extra:
        return _prune_flat(masks, keys, np.zeros(0, np.int64))
    magnitude = np.concatenate([np.abs(np.asarray(weights[k], np.float64)).reshape(-1) for k in keys])[alive]
    order = np.argsort(magnitude, kind="stable")  # stable: equal |w| keep flat-index order
    return _prune_flat(masks, keys, alive[order[:extra]])


def layerwise_magnitude_masks(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
                              target_sparsity: float) -> Dict[str, np.ndarray]:
    """Prune each tensor separately to ``round(target * size)`` by smallest |w|.

    A tensor already sparser than the target is left as it is (nothing is revived); the global sparsity must
    not exceed the target, as for the global method.
    """
    _check(weights, masks, target_sparsity)
    keys = list(weights)
    _extra_count(masks, keys, target_sparsity)  # global check only
    out: Dict[str, np.ndarray] = {}
    for k in keys:
        alive = np.asarray(masks[k]).reshape(-1) != 0
        extra = max(count_for(target_sparsity, alive.size) - (alive.size - int(alive.sum())), 0)
        flat = alive.astype(np.float32)
        if extra:
            idx = np.flatnonzero(alive)
            magnitude = np.abs(np.asarray(weights[k], np.float64)).reshape(-1)[idx]
            flat[idx[np.argsort(magnitude, kind="stable")[:extra]]] = 0.0
        out[k] = flat.reshape(np.shape(masks[k]))
    return out


def random_masks(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], target_sparsity: float,
                 seed: int) -> Dict[str, np.ndarray]:
    """Prune uniformly at random among survivors (all tensors pooled) to exactly ``round(target * total)``.

    The random-pruning baseline of SDD studies; the same seed, masks and target give the same result.
    """
    _check(weights, masks, target_sparsity)
    keys = list(weights)
    extra, alive = _extra_count(masks, keys, target_sparsity)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(alive, size=extra, replace=False) if extra else np.zeros(0, np.int64)
    return _prune_flat(masks, keys, chosen)


def sparsity(masks: Mapping[str, np.ndarray]) -> Tuple[float, Dict[str, float]]:
    """(global fraction of zeros over all masks, fraction of zeros of each mask)."""
    per: Dict[str, float] = {}
    zeros = total = 0
    for key, mask in masks.items():
        m = np.asarray(mask)
        z = int(m.size - np.count_nonzero(m))
        per[key] = z / m.size if m.size else 0.0
        zeros += z
        total += m.size
    return (zeros / total if total else 0.0), per


def collapsed(masks: Mapping[str, np.ndarray]) -> List[str]:
    """Names of the (non-empty) tensors pruned to 100 %: layer collapse, which disconnects the network."""
    return [k for k, m in masks.items() if np.size(m) and not np.any(np.asarray(m))]
