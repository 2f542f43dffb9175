"""Derived seeds: one study seed fans out into independent streams, one per (purpose, index).

Every random choice of a study (label noise, subset, validation split, initialisation, data order,
re-initialisation, random masks) draws from ``derive(seed, purpose, *index)``, a ``numpy.random.SeedSequence``
of ``[seed, purpose id, *index]``. Streams are therefore independent across purposes and indices: seed s
round k+1 never shares a stream with seed s+1 round k (which arithmetic like ``seed + k`` would).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

#: Purpose -> stream id. Ids 1-3 are the data streams ``keras_sdd.data`` has always used; never renumber.
PURPOSES: Dict[str, int] = {
    "subset": 1, "noise": 2, "val": 3,                # keras_sdd.data (label noise, subsets, validation split)
    "init": 4,                                        # model initialisation (index: round, for scratch)
    "shuffle": 5,                                     # training order and augmentation (index: round)
    "masks": 6,                                       # random pruning (index: round)
    "noisy_test": 7,                                  # noisy test labels drawn for calibration
    "export_calibration": 8,                          # int8 calibration examples of an export (keras_sdd.export)
}


def sequence(seed: int, purpose: str, *index: int) -> np.random.SeedSequence:
    """The SeedSequence of one stream."""
    if purpose not in PURPOSES:
        raise KeyError(f"unknown seed purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    if int(seed) < 0 or any(int(i) < 0 for i in index):
        raise ValueError(f"seeds and indices must be >= 0, got {seed}, {index}")
    return np.random.SeedSequence([int(seed), PURPOSES[purpose], *(int(i) for i in index)])


def derive(seed: int, purpose: str, *index: int) -> int:
    """A 31-bit integer seed for one stream (fits every TensorFlow and Keras seed argument)."""
    return int(sequence(seed, purpose, *index).generate_state(1, np.uint32)[0] & 0x7FFFFFFF)


def rng(seed: int, purpose: str, *index: int) -> np.random.Generator:
    """A numpy Generator on one stream."""
    return np.random.default_rng(sequence(seed, purpose, *index))
