"""Checkpoints of a study: the latest epoch (for --resume) and one per finished round.

A checkpoint holds the wrapped model (weights *and* masks), the optimizer state and the (round, epoch) it was
taken at. ``latest.json`` names the newest complete checkpoint and is replaced atomically after the files are
written, so a study killed while saving resumes from the previous one.
"""
from __future__ import annotations

import json
import pathlib
import shutil
from typing import Optional, Tuple

import tensorflow as tf
import tf_keras

from keras_sdd.study.records import atomic_write_json


class StudyCheckpoints:
    def __init__(self, study_dir: pathlib.Path, model: tf_keras.Model, optimizer):
        self.dir = pathlib.Path(study_dir) / "checkpoints"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._round = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, round=self._round, epoch=self._epoch)
        self._pointer = self.dir / "latest.json"

    def _write(self, name: str, round_index: int, epoch: int) -> pathlib.Path:
        """Writes a checkpoint, points latest.json at it, then drops the previous epoch checkpoint."""
        self._round.assign(round_index)
        self._epoch.assign(epoch)
        prefix = self.dir / name
        self._ckpt.write(str(prefix))
        previous = self.latest_prefix()
        atomic_write_json(self._pointer, {"prefix": prefix.name, "round": round_index, "epoch": epoch})
        if previous is not None and previous != prefix and previous.name.startswith("epoch-"):
            for f in self.dir.glob(previous.name + ".*"):
                f.unlink(missing_ok=True)
        return prefix

    def save_latest(self, round_index: int, epoch: int) -> pathlib.Path:
        """Saves the state after ``epoch`` epochs of round ``round_index`` (replacing the previous such one)."""
        return self._write(f"epoch-r{round_index:03d}-e{epoch:04d}", round_index, epoch)

    def save_round(self, round_index: int, epochs: int) -> pathlib.Path:
        """The permanent checkpoint of a trained round (masks applied); it is also the latest one."""
        return self._write(f"round-{round_index:03d}", round_index, epochs)

    def latest_prefix(self) -> Optional[pathlib.Path]:
        if not self._pointer.exists():
            return None
        return self.dir / json.loads(self._pointer.read_text())["prefix"]

    def restore(self, prefix: pathlib.Path) -> Tuple[int, int]:
        """Restores model, masks and optimizer; returns (round, epoch) of the checkpoint."""
        self._ckpt.read(str(prefix)).assert_existing_objects_matched().expect_partial()
        return int(self._round.numpy()), int(self._epoch.numpy())

    def restore_latest(self) -> Optional[Tuple[int, int]]:
        prefix = self.latest_prefix()
        return None if prefix is None else self.restore(prefix)

    def remove_all(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
