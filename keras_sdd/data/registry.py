"""The dataset registry: each name maps to a ``Source`` that knows how to check its settings cheaply and
how to read its raw arrays. Sources register themselves in tfds_sources.py, own_data.py and
gaussian_mixture.py."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from keras_sdd.registry import Registry


@dataclass(frozen=True)
class Request:
    """The source-specific part of a ``data.load`` call, handed to a source's ``check`` and ``read``."""
    name: str
    seed: int = 0
    data_dir: Optional[str] = None
    download: bool = False
    human_label: Optional[str] = None
    path: Optional[str] = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RawData:
    """A source's arrays before class selection, subsetting, noise and the validation split.

    ``x_*``: uint8 images (N,H,W,C) or float32 features (N,D). ``y_train`` holds human labels where the
    source has them (else None: noise is injected later). ``mean``/``std`` (per channel, on the [0,1]
    scale) are fixed normalisation constants; ``normalization`` says how to normalise: 'constants',
    'train_stats' (from the training split) or 'none'."""
    x_train: np.ndarray
    y_train_clean: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: Tuple[str, ...]
    y_train: Optional[np.ndarray] = None
    test_bayes_proba: Optional[np.ndarray] = None
    normalization: str = "train_stats"
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    extra_info: Dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes) -> "RawData":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Source:
    """How to get one dataset.

    ``check(request)`` does the cheap checks (options, files) and returns the class names when they are
    knowable without loading (else None); ``read(request)`` returns ``RawData``. ``options`` lists the
    allowed ``source_options`` with their defaults; ``human_labels`` the valid ``human_label`` values (first
    is the default; empty: the source has none); ``path`` is 'none', 'optional' or 'required'."""
    name: str
    read: Callable[[Request], RawData]
    check: Callable[[Request], Optional[Tuple[str, ...]]]
    options: Mapping[str, Any] = field(default_factory=dict)
    human_labels: Tuple[str, ...] = ()
    path: str = "none"
    images: bool = True


#: name -> Source for every dataset ``data.load`` knows.
DATASETS: Registry[Source] = Registry("dataset")


def register(source: Source) -> Source:
    """Add ``source`` to ``DATASETS`` under its name."""
    DATASETS.register(source.name)(source)
    return source
