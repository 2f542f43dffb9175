"""TensorBoard logging of a study.

- ``tensorboard/round_KKK``: per-epoch scalars inside round K (``epoch/loss``, ``epoch/accuracy``, ``epoch/lr``).
- ``tensorboard/study``: per-round scalars, twice: ``round/<metric>`` with step = round, and
  ``vs_sparsity/<metric>`` with step = sparsity in basis points (‱, 10000 = fully pruned), so the SDD curve
  can be read against sparsity in TensorBoard; plus the curve itself as an image (``sdd_curve``).
"""
from __future__ import annotations

import io
import pathlib
from typing import Any, Dict, List, Optional

import tensorflow as tf
import tf_keras

ROUND_SCALARS = ("sparsity", "train_noisy_accuracy", "train_clean_accuracy", "memorized_fraction",
                 "val_accuracy", "test_accuracy", "test_loss", "train_noisy_loss")


class StudyBoard:
    def __init__(self, study_dir: pathlib.Path):
        self.dir = pathlib.Path(study_dir) / "tensorboard"
        self._study = tf.summary.create_file_writer(str(self.dir / "study"))

    def round_writer(self, round_index: int):
        return tf.summary.create_file_writer(str(self.dir / f"round_{round_index:03d}"))

    def log_round(self, row: Dict[str, Any]) -> None:
        k = int(row["round"])
        bp = int(round(float(row["sparsity"]) * 10000))
        with self._study.as_default():
            for name in ROUND_SCALARS:
                value = float(row[name])
                if value == value:  # skip NaN (e.g. no validation split)
                    tf.summary.scalar(f"round/{name}", value, step=k)
                    tf.summary.scalar(f"vs_sparsity/{name}", value, step=bp)
        self._study.flush()

    def log_curve(self, png: bytes, step: int) -> None:
        with self._study.as_default():
            tf.summary.image("sdd_curve", tf.expand_dims(tf.io.decode_png(png, channels=4), 0), step=step)
        self._study.flush()


def curve_png(rows: List[Dict[str, Any]], title: str = "") -> bytes:
    """Test / validation / train accuracy against sparsity (log-scaled remaining share), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    remaining = [max(1.0 - float(r["sparsity"]), 1e-6) * 100 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for key, label in (("test_accuracy", "test"), ("val_accuracy", "validation (noisy labels)"),
                       ("train_noisy_accuracy", "train (noisy labels)"),
                       ("train_clean_accuracy", "train (clean labels)")):
        ys = [float(r[key]) * 100 for r in rows]
        if all(y == y for y in ys):
            ax.plot(remaining, ys, marker="o", ms=3, label=label)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("remaining weights (%) — sparsity grows to the right")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


class EpochScalars(tf_keras.callbacks.Callback):
    """Writes the fit logs of each epoch (and the learning rate) to one round's TensorBoard run."""

    def __init__(self, writer, schedule: Optional[Any] = None):
        super().__init__()
        self.writer = writer
        self.schedule = schedule

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default():
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{name}", float(value), step=epoch)
            if self.schedule is not None:
                lr = self.schedule(self.model.optimizer.iterations)
                tf.summary.scalar("epoch/lr", float(lr), step=epoch)

    def on_train_end(self, logs=None):
        self.writer.flush()
