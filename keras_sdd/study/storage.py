"""A failed write (full disk, read-only or vanished folder, quota) as one line naming the path and what failed.

Writes of a study (checkpoints, rows, summaries, TensorBoard events) go through ``writing(path, what)``: an
``OSError`` or a TensorFlow ``OpError`` raised inside becomes a ``StorageError`` whose message is one line,
``cannot <what> at <path>: <reason>`` (e.g. ``No space left on device``), instead of a TensorFlow traceback.
Nothing already written is damaged: every file of a study is written to a temporary name and moved into place,
so after freeing space ``--resume`` continues from the last complete checkpoint and ends as an uninterrupted run.
The apps print the message as ``error: ...`` and exit with code 2.
"""
from __future__ import annotations

import contextlib
import errno
import os
import pathlib
from typing import Iterator, Union

from keras_sdd.errors import SDDError


class StorageError(SDDError, OSError):
    """Writing a study's file failed; the message names the path, what was being written and why."""


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno:
        return error.strerror or os.strerror(error.errno)
    text = str(getattr(error, "message", "") or error).strip()
    for known in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.ENOENT):
        if os.strerror(known).lower() in text.lower():
            return os.strerror(known)
    return (text.splitlines()[-1] if text else type(error).__name__)[:200]


def describe(path: Union[str, pathlib.Path], what: str, error: BaseException) -> str:
    return f"cannot {what} at {path}: {_reason(error)}"


@contextlib.contextmanager
def writing(path: Union[str, pathlib.Path], what: str) -> Iterator[None]:
    """Turns a failed write inside the block into one ``StorageError`` line (see the module docstring)."""
    import tensorflow as tf

    try:
        yield
    except StorageError:
        raise
    except (OSError, tf.errors.OpError) as e:
        raise StorageError(describe(path, what, e)) from e
