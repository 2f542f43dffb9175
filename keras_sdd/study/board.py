"""TensorBoard logging of a study, and its curve as a PNG.

- ``tensorboard/round_KKK``: per-epoch scalars inside round K (``epoch/loss``, ``epoch/accuracy``, ``epoch/lr``),
  written together with each epoch checkpoint, so a resumed study's runs have the same tags and steps as an
  uninterrupted one (no duplicates, no gaps).
- ``tensorboard/study``: per-round scalars (the ``scalar`` columns of the round row), twice: ``round/<metric>``
  with step = round, and ``vs_sparsity/<metric>`` with step = sparsity in basis points (‱, 10000 = fully
  pruned); plus the curve as an image (``sdd_curve``), once, when the study completes.
"""
from __future__ import annotations

import io
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

from keras_sdd.study import paths
from keras_sdd.study.records import SCALARS, is_number


class StudyBoard:
    def __init__(self, study_dir: pathlib.Path):
        self.paths = paths.StudyPaths(study_dir)
        self._study = None

    def _writer(self):
        if self._study is None:
            self._study = tf.summary.create_file_writer(str(self.paths.tb_study()))
        return self._study

    def round_writer(self, round_index: int):
        return tf.summary.create_file_writer(str(self.paths.tb_round(round_index)))

    def log_round(self, row: Mapping[str, Any], only: Optional[Sequence[str]] = None) -> None:
        """The row's scalar columns (or the ``only`` ones), skipping missing and NaN values."""
        k = int(row["round"])
        bp = int(round(float(row["sparsity"]) * 10000))
        with self._writer().as_default():
            for name in (SCALARS if only is None else only):
                value = row.get(name)
                if is_number(value):
                    tf.summary.scalar(f"round/{name}", float(value), step=k)
                    tf.summary.scalar(f"vs_sparsity/{name}", float(value), step=bp)
        self._writer().flush()

    def log_image(self, tag: str, png: bytes, step: int) -> None:
        with self._writer().as_default():
            tf.summary.image(tag, tf.expand_dims(tf.io.decode_png(png, channels=4), 0), step=step)
        self._writer().flush()

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        with self._writer().as_default():
            tf.summary.text(tag, text, step=step)
        self._writer().flush()


def figure_png(fig) -> bytes:
    """A matplotlib Figure as PNG bytes, without pyplot (a notebook user's backend is never touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _remaining(rows) -> List[float]:
    return [max(1.0 - float(r["sparsity"]), 1e-6) * 100 for r in rows]


def _axes(title: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("remaining weights (%) — sparsity grows to the right")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return fig, ax


def curve_png(rows: List[Dict[str, Any]], title: str = "") -> bytes:
    """Test / validation / train accuracy against sparsity (log-scaled remaining share), as PNG bytes."""
    fig, ax = _axes(title)
    for key, label in (("test_accuracy", "test"), ("val_accuracy", "validation (noisy labels)"),
                       ("train_noisy_accuracy", "train (noisy labels)"),
                       ("train_clean_accuracy", "train (clean labels)")):
        ys = [r.get(key) for r in rows]
        if all(is_number(y) for y in ys):
            ax.plot(_remaining(rows), [100 * y for y in ys], marker="o", ms=3, label=label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def curves_png(curves: Mapping[str, List[Dict[str, Any]]], key: str = "test_accuracy", title: str = "") -> bytes:
    """One line per named study (e.g. one per λ): ``key`` against sparsity, as PNG bytes."""
    fig, ax = _axes(title)
    for name, rows in curves.items():
        pts = [(x, 100 * r[key]) for x, r in zip(_remaining(rows), rows) if is_number(r.get(key))]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=name)
    ax.set_ylabel(f"{key.replace('_', ' ')} (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


class EpochRecorder:
    """Per-epoch scalars of one round, held until ``flush`` (called right after each epoch checkpoint and at the
    round's end), so TensorBoard only ever shows epochs a resume will not redo."""

    def __init__(self, writer, schedule: Optional[Any] = None):
        self.writer, self.schedule = writer, schedule
        self.pending: List[tuple] = []

    def add(self, epoch: int, logs: Mapping[str, Any], iterations) -> None:
        values = {f"epoch/{k}": float(v) for k, v in (logs or {}).items()}
        if self.schedule is not None:
            values["epoch/lr"] = float(self.schedule(iterations))
        self.pending.append((epoch, values))

    def flush(self) -> None:
        with self.writer.as_default():
            for epoch, values in self.pending:
                for tag, value in values.items():
                    tf.summary.scalar(tag, value, step=epoch)
        self.writer.flush()
        self.pending.clear()
