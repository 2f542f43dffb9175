"""CIFAR-10N / CIFAR-100N human labels read from the authors' ``.pt`` files, without torch.

The ``.pt`` files are zip archives (torch.save format) whose pickle holds numpy arrays (or lists) in the order
of the original CIFAR python batches. A restricted unpickler rebuilds them: it allows only numpy array
reconstruction and, should a file hold real torch tensors, rebuilds those from their raw storages. Labels are
put in tensorflow-datasets order with the image ids of tfds (``train_NNNNN`` is original index NNNNN) or,
failing that, with the authors' ``image_order_c10/c100.npy`` map (tfds position -> original index).

The folder holding the files: ``--data_path`` (``path``), else ``$KERAS_SDD_DATA_DIR/cifar-n`` when it exists,
else none (tfds's own cifar10_n / cifar100_n builders are read instead); see ``keras_sdd.data.registry``.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from keras_sdd.errors import ConfigError

#: per dataset: human_label value -> key in the .pt file
HUMAN_LABEL_KEYS = {
    "cifar10_n": {"aggre": "aggre_label", "worse": "worse_label", "random1": "random_label1",
                  "random2": "random_label2", "random3": "random_label3"},
    "cifar100_n": {"noisy": "noisy_label"},
}
#: per dataset: (label archive, tfds-order map)
FILES = {"cifar10_n": ("CIFAR-10_human.pt", "image_order_c10.npy"),
         "cifar100_n": ("CIFAR-100_human.pt", "image_order_c100.npy")}

_TORCH_DTYPES = {"DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
                 "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                 "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
_NUMPY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                  ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                  ("collections", "OrderedDict")}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage, offset, size, stride, *_):
    """torch._utils._rebuild_tensor_v2 for a numpy storage (element strides)."""
    item = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride)).copy()


class _Unpickler(pickle.Unpickler):
    """Allows numpy arrays and torch tensors, nothing else (no arbitrary code from a downloaded file)."""

    def __init__(self, data: bytes, records: Dict[str, bytes]):
        super().__init__(io.BytesIO(data))
        self._records = records

    def find_class(self, module, name):
        if (module, name) in _NUMPY_GLOBALS:
            if module.startswith("numpy.core"):  # numpy >= 2 moved it; avoid the deprecated alias
                try:
                    return super().find_class(module.replace("numpy.core", "numpy._core"), name)
                except (ImportError, AttributeError):
                    pass
            return super().find_class(module, name)
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _TORCH_DTYPES:
            return _StorageType(_TORCH_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a label file")

    def persistent_load(self, pid):
        # torch's zip format: ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else np.dtype(np.uint8)
        raw = self._records.get(key)
        if raw is None:
            raise pickle.UnpicklingError(f"storage {key} missing from archive")
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<"))


def read_label_archive(path) -> Dict[str, np.ndarray]:
    """All arrays in a CIFAR-N ``.pt`` label file, as int64 numpy arrays keyed as in the file."""
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                pkl = [n for n in names if n.endswith("data.pkl")]
                if not pkl:
                    raise ConfigError(f"{path} holds no data.pkl; is it a torch .pt file?")
                prefix = pkl[0][: -len("data.pkl")]
                records = {n[len(prefix) + len("data/"):]: z.read(n) for n in names
                           if n.startswith(prefix + "data/")}
                obj = _Unpickler(z.read(pkl[0]), records).load()
        else:
            with open(path, "rb") as f:
                obj = _Unpickler(f.read(), {}).load()
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"cannot read CIFAR-N label file {path}: {e}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path} does not hold a dict of label arrays (found {type(obj).__name__})")
    return {str(k): np.asarray(v).astype(np.int64) for k, v in obj.items()}


def pick(labels: Dict[str, np.ndarray], key: str, where: str = "the label file") -> np.ndarray:
    """``labels[key]``, or a ConfigError naming the keys that exist."""
    if key not in labels:
        raise ConfigError(f"{where} has no {key!r}; keys available: {', '.join(sorted(labels))}")
    return labels[key]


def to_tfds_order(labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Labels in tfds order: position j of tfds holds original example ``order[j]``."""
    order = np.asarray(order, dtype=np.int64)
    if order.shape != labels.shape or not np.array_equal(np.sort(order), np.arange(labels.size)):
        raise ConfigError(f"the image order map is not a permutation of the {labels.size} training examples")
    return np.asarray(labels)[order]


def original_indices(ids: Sequence) -> Optional[np.ndarray]:
    """Original CIFAR indices from tfds ids ``train_NNNNN``; None unless they form a permutation."""
    try:
        idx = np.array([int((i.decode() if isinstance(i, bytes) else str(i)).rsplit("_", 1)[1])
                        for i in ids], dtype=np.int64)
    except (ValueError, IndexError):
        return None
    if not np.array_equal(np.sort(idx), np.arange(idx.size)):
        return None
    return idx


def folder_files(folder, dataset: str) -> Tuple[str, str]:
    """Paths of the label archive and order map in ``folder``; ConfigError if either is missing."""
    names = FILES[dataset]
    paths = tuple(os.path.join(os.fspath(folder), n) for n in names)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ConfigError(f"{dataset} path {folder} lacks {', '.join(os.path.basename(p) for p in missing)}; "
                          f"it must hold {names[0]} and {names[1]} from github.com/UCSC-REAL/cifar-10-100n")
    return paths


def load_human_labels(folder, dataset: str, human_label: str,
                      ids: Optional[Sequence] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(human labels, clean labels) for the tfds training order: by ``ids`` when they are tfds ids, else by
    the order map in ``folder``."""
    archive, order_file = folder_files(folder, dataset)
    labels = read_label_archive(archive)
    key = HUMAN_LABEL_KEYS[dataset][human_label]
    noisy, clean = pick(labels, key, archive), pick(labels, "clean_label", archive)
    idx = original_indices(ids) if ids is not None else None
    if idx is not None and idx.size == noisy.size:
        return noisy[idx], clean[idx]
    order = np.load(order_file)
    return to_tfds_order(noisy, order), to_tfds_order(clean, order)
