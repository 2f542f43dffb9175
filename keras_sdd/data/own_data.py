"""The user's own data: an ``.npz`` file in Keras layout, or a folder of images ``train/<class>/*``.

npz keys: ``x_train, y_train, x_test, y_test`` (optional ``class_names``). x: uint8 images (N,H,W) or
(N,H,W,C), or real-valued features (N,D). Image folders are decoded file by file (RGB, all images the same
size), class by class in sorted order and by file name within a class; the classes are train/'s folders.
Refused with a ConfigError naming the class or file: a test class missing from train/, a file that is not an
image, images of two sizes (these three by ``check``, from the file headers, before anything is trained or
written), a file whose image data cannot be decoded (by ``read``, which decodes).
Both are normalised with statistics of the training split.
"""
from __future__ import annotations

import os
import re
import struct
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


def _folder_files(path: str, names: Tuple[str, ...]):
    """(split, label, file) for every image, in reading order."""
    for split in ("train", "test"):
        for label, name in enumerate(names):
            folder = os.path.join(path, split, name)
            if os.path.isdir(folder):
                for f in _image_files(folder):
                    yield split, label, os.path.join(folder, f)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(f) -> Optional[Tuple[int, int]]:
    """(width, height) from a JPEG's start-of-frame segment; None when not found."""
    f.seek(2)
    while True:
        b = f.read(1)
        while b == b"\xff":                      # fill bytes before a marker
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # segments without a length
            continue
        if marker in (0xD9, 0xDA):                 # end of image / start of scan: no frame header seen
            return None
        head = f.read(2)
        if len(head) < 2:
            return None
        length = struct.unpack(">H", head)[0]
        if marker in _SOF:
            frame = f.read(5)
            return None if len(frame) < 5 else (struct.unpack(">H", frame[3:5])[0],
                                                 struct.unpack(">H", frame[1:3])[0])
        f.seek(length - 2, os.SEEK_CUR)
        if f.read(1) != b"\xff":
            return None
        f.seek(-1, os.SEEK_CUR)


def _header_size(file: str) -> Optional[Tuple[int, int]]:
    """(width, height) read from the file's header without decoding it; None where the header does not say
    (an unusual but maybe decodable file: ``read`` decides). ConfigError naming the file when it is no image
    TensorFlow can decode (empty, or not PNG, JPEG, GIF, BMP or WebP)."""
    try:
        with open(file, "rb") as f:
            head = f.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return struct.unpack(">II", head[16:24]) if head[12:16] == b"IHDR" else None
            if head.startswith(b"\xff\xd8"):
                return _jpeg_size(f)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return struct.unpack("<HH", head[6:10])
            if head.startswith(b"BM") and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                return abs(w), abs(h)
            if (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head.startswith(b"\xff\x0a") or \
                    head.startswith(b"\x00\x00\x00\x0cJXL "):   # WebP, JPEG XL: decodable, size left to read
                return None
    except OSError as e:
        raise ConfigError(f"image_folder: cannot read {file}: {e.strerror}") from None
    kind = "an empty file" if not head else "not a PNG, JPEG, GIF, BMP, WebP or JPEG XL image"
    raise ConfigError(f"image_folder: cannot decode {file}: {kind}; use valid PNG/JPEG files")


def _size_error(path, first, file, size) -> ConfigError:
    return ConfigError(f"image_folder {path}: all images must have the same size, but {first[0]} is "
                       f"{first[1][0]}x{first[1][1]} and {file} is {size[0]}x{size[1]} (width x height)")


def _folder_check(req: Request) -> Optional[Tuple[str, ...]]:
    """Classes, then every file's header: no decoding (a few bytes a file), so it is cheap."""
    names = _folder_classes(req.path)
    first = None
    for _, _, file in _folder_files(req.path, names):
        size = _header_size(file)
        if size is None:
            continue
        if first is None:
            first = (file, size)
        elif size != first[1]:
            raise _size_error(req.path, first, file, size)
    return names


def _decode(file: str) -> np.ndarray:
    """One image as uint8 RGB (H, W, 3); ConfigError naming the file when it cannot be decoded."""
    import tensorflow as tf  # lazy

    try:
        img = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as e:
        # TF's message names its kernel ('{{function_node __wrapped__DecodeImage...}} ... [Op:DecodeImage]'):
        # keep only the reason
        reason = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]|\bname:\s*$", "", getattr(e, "message", None) or str(e))
        reason = re.sub(r"\s+", " ", reason).strip().rstrip(".")
        raise ConfigError(f"image_folder: cannot decode {file}: {reason or 'invalid image data'}"
                          "; use valid PNG/JPEG files") from None
    return img.numpy()


def _folder_read(req: Request) -> RawData:
    names = _folder_check(req)
    images = {"train": [], "test": []}
    labels = {"train": [], "test": []}
    first = None
    for split, label, file in _folder_files(req.path, names):
        img = _decode(file)
        size = (img.shape[1], img.shape[0])
        if first is None:
            first = (file, size)
        elif size != first[1]:
            raise _size_error(req.path, first, file, size)
        images[split].append(img)
        labels[split].append(label)
    out = []
    for split in ("train", "test"):
        out += [np.stack(images[split]).astype(np.uint8), np.array(labels[split], np.int64)]
    return RawData(out[0], out[1], out[2], out[3], names, normalization="train_stats")


register(Source("npz", read=_npz_read, check=_npz_check, path="required"))
register(Source("image_folder", read=_folder_read, check=_folder_check, path="required"))
