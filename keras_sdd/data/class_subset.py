"""Keep K chosen classes of a dataset and relabel them 0..K-1 in the order given (pure functions)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from keras_sdd.errors import ConfigError


def resolve_classes(classes: Sequence, class_names: Sequence[str]) -> Tuple[int, ...]:
    """Turn class names or integer ids into ids; unknown or repeated classes raise ConfigError.

    A string matches a class name first; failing that, a string of digits is read as an id (so CLI input
    like ``"3"`` works for any dataset)."""
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise ConfigError(f"classes must be a sequence of class names or ids, got {classes!r}")
    names = [str(n) for n in class_names]
    k = len(names)
    valid = ", ".join(f"{i}={n}" for i, n in enumerate(names)) if k <= 20 else \
        f"ids 0..{k - 1} or names {', '.join(names[:5])}, ... (see DatasetInfo.class_names)"
    ids = []
    for c in classes:
        if isinstance(c, (bool, np.bool_)):
            cid = None
        elif isinstance(c, (int, np.integer)):
            cid = int(c) if 0 <= int(c) < k else None
        elif isinstance(c, str):
            cid = names.index(c) if c in names else (int(c) if c.isdigit() and int(c) < k else None)
        else:
            cid = None
        if cid is None:
            raise ConfigError(f"unknown class {c!r}; valid classes: {valid}")
        ids.append(cid)
    if len(ids) < 2:
        raise ConfigError(f"classes must name at least 2 classes, got {list(classes)!r}")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"classes lists a class twice: {list(classes)!r}")
    return tuple(ids)


def relabel(labels: np.ndarray, class_ids: Sequence[int]) -> np.ndarray:
    """Map class ``class_ids[j]`` to ``j``; labels outside ``class_ids`` become -1."""
    labels = np.asarray(labels, dtype=np.int64)
    table = np.full(max(int(labels.max(initial=0)), max(class_ids)) + 1, -1, dtype=np.int64)
    table[list(class_ids)] = np.arange(len(class_ids))
    return table[labels]


def select_classes(x: np.ndarray, y_clean: np.ndarray, class_ids: Sequence[int],
                   y: Optional[np.ndarray] = None):
    """Keep the examples whose clean label (and, if given, training label ``y``) is among ``class_ids``.

    Returns ``(x, y_clean, y, keep)`` with labels relabelled 0..K-1 and ``keep`` the boolean mask used;
    ``y`` stays None when not given. Examples whose human label falls outside the kept classes are dropped,
    as there is no class to give them."""
    y_clean_new = relabel(y_clean, class_ids)
    keep = y_clean_new >= 0
    y_new = None
    if y is not None:
        y_new = relabel(y, class_ids)
        keep &= y_new >= 0
        y_new = y_new[keep]
    return x[keep], y_clean_new[keep], y_new, keep
