"""Datasets for sparse-double-descent studies: load one by name, with class selection, subsetting, label
noise and a validation split applied in a fixed, seeded order.

``load`` = ``validate`` (cheap checks, ConfigError on bad input) + the source's arrays + classes -> subset ->
noise over the whole training set -> validation split carved from it -> ``DataBundle``.

**Where data is found** (precedence, highest first; see ``keras_sdd.data.registry``): tfds datasets:
``data_dir`` (``--data_dir``) > ``$KERAS_SDD_DATA_DIR/tensorflow_datasets`` (when it exists) > tensorflow-datasets'
own default (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``). CIFAR-N label files: ``path`` (``--data_path``) >
``$KERAS_SDD_DATA_DIR/cifar-n`` (when it exists) > tfds's own cifar10_n / cifar100_n builders.
"""
from __future__ import annotations

import numbers
import os
from typing import Optional, Sequence, Tuple

import numpy as np

from keras_sdd.data import gaussian_mixture, own_data, tfds_sources  # noqa: F401  (register the sources)
from keras_sdd.data.augment import AUGMENTATIONS
from keras_sdd.data.bundle import DataBundle, DatasetInfo, Split
from keras_sdd.data.class_subset import resolve_classes, select_classes
from keras_sdd.data.label_noise import NOISE_TYPES, inject
from keras_sdd.data.registry import DATA_ROOT_ENV, DATASETS, RawData, Request, Source, root_folder
from keras_sdd.errors import ConfigError

__all__ = ["DATASETS", "DATA_ROOT_ENV", "DataBundle", "DatasetInfo", "Split", "load", "validate", "NOISE_TYPES",
           "AUGMENTATIONS"]

# independent random streams of one data seed
_SUBSET, _NOISE, _VAL = 1, 2, 3


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    return float(value)


def _prepare(name, *, seed, noise_type, noise_rate, val_fraction, classes, train_subset, data_dir, download,
             human_label, path, augment, normalize, source_options
             ) -> Tuple[Source, Request, Optional[Tuple[int, ...]]]:
    """All cheap checks; returns the source, its request and the class ids when knowable now."""
    if not isinstance(name, str):
        raise ConfigError(f"dataset name must be a string; valid choices: {', '.join(DATASETS.names())}")
    source = DATASETS.get(name)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if noise_type not in NOISE_TYPES:
        raise ConfigError(f"unknown noise_type {noise_type!r}; valid choices: {', '.join(NOISE_TYPES)}")
    rate = _number(noise_rate, "noise_rate")
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"noise_rate must lie in [0, 1), got {noise_rate!r}")
    if noise_type == "none" and rate > 0:
        raise ConfigError(f"noise_type 'none' with noise_rate {rate}; choose symmetric, uniform or pairflip, or rate 0")
    if source.human_labels:
        if rate > 0:
            raise ConfigError(f"{name} trains on its human labels; synthetic noise cannot be added: use "
                              f"noise_type='none' and noise_rate=0 (choose the labels with human_label)")
        if human_label is None:
            human_label = source.human_labels[0]
        if human_label not in source.human_labels:
            raise ConfigError(f"unknown human_label {human_label!r} for {name}; valid choices: "
                              f"{', '.join(source.human_labels)}")
    elif human_label is not None:
        raise ConfigError(f"human_label applies to cifar10_n and cifar100_n only, not {name}")
    vf = _number(val_fraction, "val_fraction")
    if not 0.0 <= vf < 1.0:
        raise ConfigError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    if train_subset is not None and (isinstance(train_subset, bool) or
                                     not isinstance(train_subset, (int, np.integer)) or train_subset < 1):
        raise ConfigError(f"train_subset must be a positive integer or None, got {train_subset!r}")
    if not isinstance(download, bool):
        raise ConfigError(f"download must be True or False, got {download!r}")
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ConfigError(f"data_dir must be a path or None, got {data_dir!r}")
    if source.path == "none" and path is not None:
        raise ConfigError(f"{name} takes no path (path applies to npz, image_folder, cifar10_n, cifar100_n)")
    if source.path == "required" and path is None:
        raise ConfigError(f"{name} needs path=<{'file.npz' if name == 'npz' else 'folder'}>")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path must be a file or folder path, got {path!r}")
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"unknown augment {augment!r}; valid choices: {', '.join(AUGMENTATIONS)}")
    if augment != "none" and not source.images:
        raise ConfigError(f"augment={augment!r} needs images; {name} has feature vectors, use augment='none'")
    if not isinstance(normalize, bool):
        raise ConfigError(f"normalize must be True or False, got {normalize!r}")
    unknown = sorted(set(source_options) - set(source.options))
    if unknown:
        if not source.options:
            raise ConfigError(f"{name} takes no options, got {', '.join(unknown)}")
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for {name}; valid options: "
                          f"{', '.join(sorted(source.options))}")
    if data_dir is None and source.tfds:          # flag > $KERAS_SDD_DATA_DIR/tensorflow_datasets > tfds default
        data_dir = root_folder("tensorflow_datasets")
    if path is None and source.human_labels:      # flag > $KERAS_SDD_DATA_DIR/cifar-n > tfds's own builders
        path = root_folder("cifar-n")
    request = Request(name, int(seed), None if data_dir is None else os.fspath(data_dir), download, human_label,
                      None if path is None else os.fspath(path), dict(source_options))
    class_names = source.check(request)
    class_ids = None
    if classes is not None and class_names is not None:
        class_ids = resolve_classes(classes, class_names)
    return source, request, class_ids


def validate(name: str, *, seed: int = 0, noise_type: str = "symmetric", noise_rate: float = 0.0,
             val_fraction: float = 0.1, classes: Optional[Sequence] = None, train_subset: Optional[int] = None,
             data_dir=None, download: bool = False, human_label: Optional[str] = None, path=None,
             augment: str = "none", normalize: bool = True, **source_options) -> None:
    """Cheap checks of a ``load`` call (names, ranges, files, classes, human labels); raises ConfigError."""
    _prepare(name, seed=seed, noise_type=noise_type, noise_rate=noise_rate, val_fraction=val_fraction,
             classes=classes, train_subset=train_subset, data_dir=data_dir, download=download,
             human_label=human_label, path=path, augment=augment, normalize=normalize,
             source_options=source_options)


def _train_stats(x: np.ndarray, images: bool):
    """Per-channel (images, on the [0,1] scale) or per-feature mean and std of the training inputs."""
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(np.float64) / (255.0 if images else 1.0)
    mean, std = xf.mean(axis=axes), xf.std(axis=axes)
    return mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)


def load(name: str, *, seed: int = 0, noise_type: str = "symmetric", noise_rate: float = 0.0,
         val_fraction: float = 0.1, classes: Optional[Sequence] = None, train_subset: Optional[int] = None,
         data_dir=None, download: bool = False, human_label: Optional[str] = None, path=None,
         augment: str = "none", normalize: bool = True, **source_options) -> DataBundle:
    """Load dataset ``name`` as a ``DataBundle``; see the module docstring for the order of the steps."""
    source, req, class_ids = _prepare(
        name, seed=seed, noise_type=noise_type, noise_rate=noise_rate, val_fraction=val_fraction,
        classes=classes, train_subset=train_subset, data_dir=data_dir, download=download,
        human_label=human_label, path=path, augment=augment, normalize=normalize, source_options=source_options)
    raw: RawData = source.read(req)
    seed = int(seed)
    names = tuple(raw.class_names)
    x_tr, y_clean, y_human = raw.x_train, raw.y_train_clean, raw.y_train
    x_te, y_te, bayes = raw.x_test, raw.y_test, raw.test_bayes_proba
    extras = dict(raw.extra_info)

    if classes is not None:
        ids = class_ids if class_ids is not None else resolve_classes(classes, names)
        x_tr, y_clean, y_human, _ = select_classes(x_tr, y_clean, ids, y_human)
        x_te, y_te, _, keep = select_classes(x_te, y_te, ids)
        if bayes is not None:
            bayes = bayes[keep][:, list(ids)]
            bayes = bayes / bayes.sum(axis=1, keepdims=True)
        names = tuple(names[i] for i in ids)
        extras["class_ids"] = list(ids)

    if train_subset is not None:
        if train_subset > len(y_clean):
            raise ConfigError(f"train_subset={train_subset} but {name} has only {len(y_clean)} training examples")
        keep = np.sort(_rng(seed, _SUBSET).choice(len(y_clean), size=int(train_subset), replace=False))
        x_tr, y_clean = x_tr[keep], y_clean[keep]
        y_human = None if y_human is None else y_human[keep]

    k = len(names)
    y = y_human if y_human is not None else inject(y_clean, noise_type, float(noise_rate), k,
                                                   _rng(seed, _NOISE))
    n = len(y)
    val = None
    train_idx = np.arange(n)
    if val_fraction > 0:
        n_val = max(1, int(round(val_fraction * n)))
        if n_val >= n:
            raise ConfigError(f"val_fraction={val_fraction} leaves no training examples out of {n}")
        perm = _rng(seed, _VAL).permutation(n)
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        val = Split(x_tr[val_idx], y[val_idx], y_clean[val_idx])
    train = Split(x_tr[train_idx], y[train_idx], y_clean[train_idx])
    test = Split(x_te, y_te.astype(np.int64), y_te.astype(np.int64))

    images = train.x.dtype == np.uint8 and train.x.ndim == 4
    mean = std = None
    if normalize and raw.normalization == "constants":
        mean, std = raw.mean, raw.std
    elif normalize and raw.normalization == "train_stats":
        mean, std = _train_stats(train.x, images)

    info = DatasetInfo(
        name=name, num_classes=k, input_shape=tuple(int(s) for s in train.x.shape[1:]), class_names=names,
        train_size=len(train), val_size=0 if val is None else len(val), test_size=len(test),
        noise_type="none" if y_human is not None else noise_type,
        noise_rate=float(noise_rate), train_noise_rate=float(np.mean(train.is_noisy)) if len(train) else 0.0,
        extras=extras)
    return DataBundle(info, train, val, test, bayes_proba=bayes, augment=augment, mean=mean, std=std)
