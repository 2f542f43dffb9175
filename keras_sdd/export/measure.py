"""What an exported file costs and keeps: its size (raw bytes, and gzip-compressed, which is what a download or
an app bundle costs), its test accuracy when run from the file, and its latency per example.

Latency: the median over ``repeats`` timed runs, each of enough calls of one batch to last ~20 ms (so a timer's
resolution never dominates), divided by the batch size; after warm-up calls. Only ratios measured in one process
mean much (the machine and its load change absolute numbers).
"""
from __future__ import annotations

import gzip
import io
import pathlib
import statistics
import tarfile
import time
from dataclasses import dataclass
from typing import Callable, List, Sequence

import numpy as np

from keras_sdd.export.tflite import TFLiteRunner


@dataclass(frozen=True)
class FileSize:
    raw: int
    gzip: int


def file_size(path: pathlib.Path) -> FileSize:
    """Bytes of a file (or of every file of a folder), and of its gzip-compressed form (level 9; a folder as a
    tar archive of its files in sorted order, with fixed metadata, so equal folders compress equally)."""
    path = pathlib.Path(path)
    if path.is_file():
        data = path.read_bytes()
        return FileSize(len(data), len(gzip.compress(data, 9, mtime=0)))
    files = sorted(p for p in path.rglob("*") if p.is_file())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in files:
            info = tarfile.TarInfo(str(f.relative_to(path)))
            info.size = f.stat().st_size
            with open(f, "rb") as fh:
                tar.addfile(info, fh)
    return FileSize(sum(f.stat().st_size for f in files), len(gzip.compress(buf.getvalue(), 9, mtime=0)))


class KerasRunner:
    """Runs a ``.keras`` file (loaded back with tf_keras) or a SavedModel folder (loaded back with TensorFlow alone,
    through its ``serving_default`` signature, as a server would): ``runner(x) -> logits``."""

    def __init__(self, path: pathlib.Path, fmt: str = "keras"):
        import tensorflow as tf
        import tf_keras

        if fmt == "saved_model":
            self.model = tf.saved_model.load(str(path))
            signature = self.model.signatures["serving_default"]
            (name, spec), = signature.structured_input_signature[1].items()
            self._call = tf.function(lambda x: next(iter(signature(**{name: x}).values())), reduce_retracing=True)
        else:
            self.model = tf_keras.models.load_model(str(path), compile=False)
            self._call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(np.asarray(x, np.float32)))

    def invoke_fn(self, x: np.ndarray) -> Callable[[], object]:
        import tensorflow as tf

        xt = tf.constant(np.asarray(x, np.float32))
        return lambda: self._call(xt).numpy()


def runner_for(path: pathlib.Path, fmt: str, runtime: str = "xnnpack", threads: int = 1):
    """A callable running the exported file at ``path`` (read back from disk, as a user would)."""
    if fmt == "tflite":
        return TFLiteRunner(pathlib.Path(path).read_bytes(), runtime=runtime, threads=threads)
    return KerasRunner(path, fmt)


def accuracy(runner, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Share of ``x`` whose arg-max logit is the label ``y``."""
    if not len(x):
        return float("nan")
    hits = 0
    for lo in range(0, len(x), batch_size):
        logits = runner(x[lo:lo + batch_size])
        hits += int(np.sum(np.argmax(logits, axis=1) == y[lo:lo + batch_size]))
    return hits / len(x)


def _batch(x: np.ndarray, size: int) -> np.ndarray:
    reps = -(-size // len(x))
    return np.concatenate([x] * reps)[:size] if reps > 1 else x[:size]


def _calls_for(call, target_s: float) -> int:
    for _ in range(2):
        call()
    t0 = time.perf_counter()
    call()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(10_000, int(target_s / once)))


def paired_latency(runners: Sequence, x: np.ndarray, batch: int, repeats: int = 15,
                   target_s: float = 0.02) -> List[float]:
    """Median seconds per example of each runner on batches of ``batch`` examples (taken from ``x``).

    The runners are timed in turn within every repeat, so a change of the machine's load during the measurement
    falls on all of them alike and their ratios stay meaningful."""
    xb = _batch(x, batch)
    calls = [r.invoke_fn(xb) for r in runners]
    counts = [_calls_for(c, target_s) for c in calls]
    times: List[List[float]] = [[] for _ in runners]
    for _ in range(int(repeats)):
        for call, n, out in zip(calls, counts, times):
            t0 = time.perf_counter()
            for _ in range(n):
                call()
            out.append((time.perf_counter() - t0) / n)
    return [statistics.median(t) / batch for t in times]
