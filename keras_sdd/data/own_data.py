"""The user's own data: an ``.npz`` file in Keras layout, or a folder of images ``train/<class>/*``.

npz keys: ``x_train, y_train, x_test, y_test`` (optional ``class_names``). x: uint8 images (N,H,W) or
(N,H,W,C), or real-valued features (N,D). Image folders are decoded file by file (RGB, all images the same
size; a file that cannot be decoded is named), class by class in sorted order and by file name within a class;
the classes are train/'s folders, and a test class missing from train/ is refused.
Both are normalised with statistics of the training split.
"""
from __future__ import annotations

import os
import zipfile
from typing import Dict, Optional, Tuple

import numpy as np

from keras_sdd.data.registry import RawData, Request, Source, register
from keras_sdd.errors import ConfigError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


# ---------------------------------------------------------------- npz
def _npz_headers(path: str) -> Dict[str, Tuple[tuple, np.dtype]]:
    """Shape and dtype of every array in an .npz, read from the npy headers only (no data loaded)."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if not member.endswith(".npy"):
                    continue
                with z.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(f)
                out[member[:-4]] = (tuple(shape), dtype)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ConfigError(f"npz path {path} is not a readable .npz file: {e}") from None
    return out


def _npz_check(req: Request) -> Optional[Tuple[str, ...]]:
    path = req.path
    if not os.path.isfile(path):
        raise ConfigError(f"npz path {path} is not a file; pass path=<file.npz> holding {', '.join(NPZ_KEYS)}")
    heads = _npz_headers(path)
    missing = [k for k in NPZ_KEYS if k not in heads]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}; an npz dataset needs keys {', '.join(NPZ_KEYS)} "
                          f"(found: {', '.join(sorted(heads)) or 'none'})")
    for split in ("train", "test"):
        xs, ys = heads[f"x_{split}"][0], heads[f"y_{split}"][0]
        if len(xs) not in (2, 3, 4):
            raise ConfigError(f"{path}: x_{split} must have shape (N,H,W), (N,H,W,C) or (N,D), got {xs}")
        if not (len(ys) == 1 or (len(ys) == 2 and ys[1] == 1)):
            raise ConfigError(f"{path}: y_{split} must have shape (N,) or (N,1), got {ys}")
        if xs[0] != ys[0]:
            raise ConfigError(f"{path}: x_{split} has {xs[0]} examples but y_{split} has {ys[0]}")
    tr, te = heads["x_train"][0], heads["x_test"][0]
    if tr[1:] != te[1:]:
        raise ConfigError(f"{path}: x_train examples have shape {tr[1:]} but x_test examples {te[1:]}")
    with np.load(path, allow_pickle=False) as f:
        return _npz_classes(path, f["y_train"], f["y_test"], f["class_names"] if "class_names" in f else None)


def _labels(path, y, key) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if not (np.issubdtype(y.dtype, np.integer) or
            (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))):
        raise ConfigError(f"{path}: {key} must hold integer class ids, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ConfigError(f"{path}: {key} holds negative class ids")
    return y.astype(np.int64)


def _npz_classes(path, y_train, y_test, names) -> Tuple[str, ...]:
    k = int(max(_labels(path, y_train, "y_train").max(initial=0),
                _labels(path, y_test, "y_test").max(initial=0))) + 1
    if names is None:
        return tuple(str(i) for i in range(k))
    names = tuple(str(n) for n in np.asarray(names).reshape(-1))
    if len(names) < k:
        raise ConfigError(f"{path}: class_names lists {len(names)} classes but labels go up to {k - 1}")
    return names


def _npz_features(path, x, key) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:
        if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
            raise ConfigError(f"{path}: {key} features must be real numbers, got dtype {x.dtype}")
        return x.astype(np.float32)
    if x.dtype != np.uint8:
        raise ConfigError(f"{path}: {key} images must be uint8 (0..255), got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] not in (1, 3, 4):
        raise ConfigError(f"{path}: {key} images must have 1, 3 or 4 channels, got shape {x.shape}")
    return x


def _npz_read(req: Request) -> RawData:
    path = req.path
    _npz_check(req)
    with np.load(path, allow_pickle=False) as f:
        names = _npz_classes(path, f["y_train"], f["y_test"], f["class_names"] if "class_names" in f else None)
        x_tr, x_te = _npz_features(path, f["x_train"], "x_train"), _npz_features(path, f["x_test"], "x_test")
        y_tr, y_te = _labels(path, f["y_train"], "y_train"), _labels(path, f["y_test"], "y_test")
    return RawData(x_tr, y_tr, x_te, y_te, names, normalization="train_stats")


# ---------------------------------------------------------------- image folder
def _class_folders(path: str, split: str):
    d = os.path.join(path, split)
    subs = sorted(s for s in os.listdir(d) if os.path.isdir(os.path.join(d, s))) if os.path.isdir(d) else []
    if not subs:
        raise ConfigError(f"image_folder path {path} has no {split}/<class>/ folders; it must hold "
                          f"train/<class>/*.png|jpg and test/<class>/*.png|jpg")
    return subs


def _image_files(folder: str):
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def _folder_classes(path: str) -> Tuple[str, ...]:
    """Class names: the sorted sub-folders of train/. Every test class must be a training class."""
    if not os.path.isdir(path):
        raise ConfigError(f"image_folder path {path} is not a folder; it must hold train/<class>/*.png|jpg "
                          f"and test/<class>/*.png|jpg")
    splits = {}
    for split in ("train", "test"):
        subs = splits[split] = _class_folders(path, split)
        for s in subs:
            if not _image_files(os.path.join(path, split, s)):
                raise ConfigError(f"image_folder {os.path.join(path, split, s)} holds no .png/.jpg images")
    unseen = sorted(set(splits["test"]) - set(splits["train"]))
    if unseen:
        raise ConfigError(f"image_folder {path}: test/ has class(es) {', '.join(unseen)} that train/ lacks; a "
                          "class the model never trains on cannot be tested")
    return tuple(splits["train"])


def _folder_check(req: Request) -> Optional[Tuple[str, ...]]:
    return _folder_classes(req.path)


def _decode(file: str) -> np.ndarray:
    """One image as uint8 RGB (H, W, 3); ConfigError naming the file when it cannot be decoded."""
    import tensorflow as tf  # lazy

    try:
        img = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as e:
        raise ConfigError(f"image_folder: cannot decode {file} ({type(e).__name__}); use valid PNG/JPEG "
                          "files") from None
    return img.numpy()


def _folder_read(req: Request) -> RawData:
    names = _folder_classes(req.path)
    out = []
    first = None
    for split in ("train", "test"):
        images, labels = [], []
        for label, name in enumerate(names):
            folder = os.path.join(req.path, split, name)
            if not os.path.isdir(folder):
                continue
            for f in _image_files(folder):
                file = os.path.join(folder, f)
                img = _decode(file)
                if first is None:
                    first = (file, img.shape)
                elif img.shape != first[1]:
                    raise ConfigError(f"image_folder {req.path}: all images must have the same size, but "
                                      f"{first[0]} is {first[1][1]}x{first[1][0]} and {file} is "
                                      f"{img.shape[1]}x{img.shape[0]}")
                images.append(img)
                labels.append(label)
        out += [np.stack(images).astype(np.uint8), np.array(labels, np.int64)]
    return RawData(out[0], out[1], out[2], out[3], names, normalization="train_stats")


register(Source("npz", read=_npz_read, check=_npz_check, path="required"))
register(Source("image_folder", read=_folder_read, check=_folder_check, path="required"))
