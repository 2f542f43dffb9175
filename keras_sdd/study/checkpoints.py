"""Checkpoints of a study: the latest epoch (for --resume) and one per finished round.

A checkpoint holds the wrapped model (weights *and* masks), the optimizer state and the (round, epoch) it was
taken at. ``latest.json`` names the newest complete checkpoint and is replaced atomically after the files are
written, so a study killed while saving resumes from the previous one. ``verify`` reads a checkpoint whole
without restoring it, so a damaged file is found before a resume writes or trains anything.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Optional, Tuple

import tensorflow as tf
import tf_keras

from keras_sdd.errors import ConfigError
from keras_sdd.study import paths
from keras_sdd.study.records import atomic_write_json
from keras_sdd.study.storage import writing


@dataclass(frozen=True)
class Pointer:
    """What ``latest.json`` says: the newest checkpoint's prefix and the (round, epoch) it was taken at."""

    prefix: pathlib.Path
    round: int
    epoch: int

    @property
    def is_round(self) -> bool:
        return self.prefix.name.startswith("round-")


def read_pointer(study_dir: paths.PathLike) -> Optional[Pointer]:
    """Parses ``checkpoints/latest.json`` (None when absent); ConfigError when it is damaged."""
    p = paths.StudyPaths(study_dir)
    if not p.latest.exists():
        return None
    try:
        d = json.loads(p.latest.read_text())
        return Pointer(p.checkpoints / str(d["prefix"]), int(d["round"]), int(d["epoch"]))
    except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p.latest} is damaged ({type(e).__name__}); it should name the latest checkpoint") \
            from None


def verify(prefix: pathlib.Path) -> None:
    """Reads every tensor of the checkpoint at ``prefix``; ConfigError naming it when missing or damaged."""
    if not pathlib.Path(f"{prefix}.index").is_file():
        raise ConfigError(f"checkpoint {prefix} is missing (no {pathlib.Path(prefix).name}.index)")
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, OSError, IndexError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"checkpoint {prefix} is damaged: {first[:200]}") from None


class StudyCheckpoints:
    """Saves and restores one study's model, optimizer and (round, epoch) position."""

    def __init__(self, study_dir: paths.PathLike, model: tf_keras.Model, optimizer):
        self.paths = paths.StudyPaths(study_dir)
        self.dir = self.paths.checkpoints
        self._round = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, round=self._round, epoch=self._epoch)

    def _write(self, prefix: pathlib.Path, round_index: int, epoch: int) -> pathlib.Path:
        """Writes a checkpoint, points latest.json at it, then drops the previous epoch checkpoint."""
        self.write_files(prefix, round_index, epoch)
        return self.point(prefix, round_index, epoch)

    def write_files(self, prefix: pathlib.Path, round_index: int, epoch: int) -> None:
        """Writes the checkpoint's files only (``latest.json`` still names the previous one): packed replicates
        write every replicate's files before moving any pointer (``keras_sdd.study.packed``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._round.assign(round_index)
        self._epoch.assign(epoch)
        with writing(prefix, "write the checkpoint"):
            self._ckpt.write(str(prefix))

    def point(self, prefix: pathlib.Path, round_index: int, epoch: int) -> pathlib.Path:
        """Points latest.json at the written checkpoint ``prefix``, then drops the previous epoch checkpoint."""
        previous = read_pointer(self.paths.root)
        atomic_write_json(self.paths.latest, {"prefix": prefix.name, "round": round_index, "epoch": epoch})
        if previous is not None and previous.prefix != prefix and not previous.is_round:
            for f in self.dir.glob(previous.prefix.name + ".*"):
                f.unlink(missing_ok=True)
        return prefix

    def save_latest(self, round_index: int, epoch: int) -> pathlib.Path:
        """Saves the state after ``epoch`` epochs of round ``round_index`` (replacing the previous such one)."""
        return self._write(self.paths.epoch_checkpoint(round_index, epoch), round_index, epoch)

    def save_round(self, round_index: int, epochs: int) -> pathlib.Path:
        """The permanent checkpoint of a trained round (masks applied); it is also the latest one."""
        return self._write(self.paths.round_checkpoint(round_index), round_index, epochs)

    def restore(self, prefix: pathlib.Path) -> Tuple[int, int]:
        """Restores model, masks and optimizer; returns (round, epoch) of the checkpoint."""
        self._ckpt.read(str(prefix)).assert_existing_objects_matched().expect_partial()
        return int(self._round.numpy()), int(self._epoch.numpy())


def restore_model(model: tf_keras.Model, prefix: pathlib.Path) -> None:
    """Restores only the model (weights and masks) of a study checkpoint; the optimizer state is skipped."""
    tf.train.Checkpoint(model=model).read(str(prefix)).expect_partial().assert_existing_objects_matched()
