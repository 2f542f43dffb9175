"""The dataset registry: each name maps to a ``Source`` that knows how to check its settings cheaply and
how to read its raw arrays. Sources register themselves in tfds_sources.py, own_data.py and
gaussian_mixture.py.

**The data root.** One setting, the environment variable ``KERAS_SDD_DATA_DIR``, names a folder laid out as
``tensorflow_datasets/`` (datasets prepared by tensorflow-datasets) and ``cifar-n/`` (the CIFAR-N label files).
Precedence, highest first:

- tfds datasets (mnist, fashion_mnist, cifar10/100, cifar10_n/100_n): ``--data_dir`` >
  ``$KERAS_SDD_DATA_DIR/tensorflow_datasets`` (when that folder exists) > tensorflow-datasets' own default
  (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``);
- CIFAR-N label files: ``--data_path`` > ``$KERAS_SDD_DATA_DIR/cifar-n`` (when it exists) > tfds's own
  cifar10_n / cifar100_n builders (prepared from the manual files, found as above).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from keras_sdd.registry import Registry

#: Environment variable naming the data root: a folder holding tensorflow_datasets/ and cifar-n/.
DATA_ROOT_ENV = "KERAS_SDD_DATA_DIR"


def data_root() -> Optional[str]:
    """``$KERAS_SDD_DATA_DIR`` (user-expanded), or None when unset or empty."""
    root = os.environ.get(DATA_ROOT_ENV, "").strip()
    return os.path.expanduser(root) if root else None


def root_folder(sub: str) -> Optional[str]:
    """``$KERAS_SDD_DATA_DIR/<sub>`` when that folder exists, else None."""
    root = data_root()
    folder = None if root is None else os.path.join(root, sub)
    return folder if folder is not None and os.path.isdir(folder) else None


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
    is the default; empty: the source has none); ``path`` is 'none', 'optional' or 'required'; ``tfds``: the
    source reads tensorflow-datasets (``data_dir``, ``download`` and the data root's tensorflow_datasets/ apply)."""
    name: str
    read: Callable[[Request], RawData]
    check: Callable[[Request], Optional[Tuple[str, ...]]]
    options: Mapping[str, Any] = field(default_factory=dict)
    human_labels: Tuple[str, ...] = ()
    path: str = "none"
    images: bool = True
    tfds: bool = False


#: name -> Source for every dataset ``data.load`` knows.
DATASETS: Registry[Source] = Registry("dataset")


def register(source: Source) -> Source:
    """Add ``source`` to ``DATASETS`` under its name."""
    DATASETS.register(source.name)(source)
    return source
