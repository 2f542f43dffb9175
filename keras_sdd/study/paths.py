"""Every file name of a study directory, in one place (open_lth's ``paths.py`` habit).

A study directory holds ``config.json`` (the StudyConfig), ``flags.txt`` (the flags of the first run) and
``flags.resumed.N.txt`` (one per resume), ``rounds.csv`` (one row per finished round), ``summary.json``,
``sdd_curve.png``, ``tensorboard/`` (``study`` and ``epochs`` runs; ``round_KKK`` in older studies), ``checkpoints/`` (``round-KKK`` per
finished round, the latest ``epoch-rKKK-eEEEE`` and ``latest.json`` naming the newest one),
``rewind_weights.npz`` (weight rewinding) and ``predictions/round-KKK.npz`` (test predictions for calibration).
"""
from __future__ import annotations

import pathlib
from typing import Iterator, Union

PathLike = Union[str, pathlib.Path]

CONFIG = "config.json"
ROUNDS = "rounds.csv"
SUMMARY = "summary.json"
FLAGS = "flags.txt"
CURVE = "sdd_curve.png"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
REWIND = "rewind_weights.npz"
PREDICTIONS = "predictions"
#: A study kind that runs several member studies (e.g. ``l2``) writes this beside their folders.
GROUP = "group.json"


class StudyPaths:
    """The files of one study directory (nothing is created here)."""

    def __init__(self, root: PathLike):
        self.root = pathlib.Path(root)

    config = property(lambda self: self.root / CONFIG)
    rounds = property(lambda self: self.root / ROUNDS)
    summary = property(lambda self: self.root / SUMMARY)
    flags = property(lambda self: self.root / FLAGS)
    curve = property(lambda self: self.root / CURVE)
    tensorboard = property(lambda self: self.root / TENSORBOARD)
    checkpoints = property(lambda self: self.root / CHECKPOINTS)
    latest = property(lambda self: self.root / CHECKPOINTS / LATEST)
    rewind = property(lambda self: self.root / REWIND)
    predictions = property(lambda self: self.root / PREDICTIONS)
    group = property(lambda self: self.root / GROUP)

    def round_checkpoint(self, k: int) -> pathlib.Path:
        return self.checkpoints / f"round-{k:03d}"

    def epoch_checkpoint(self, k: int, epoch: int) -> pathlib.Path:
        return self.checkpoints / f"epoch-r{k:03d}-e{epoch:04d}"

    def round_predictions(self, k: int) -> pathlib.Path:
        return self.predictions / f"round-{k:03d}.npz"

    def tb_study(self) -> pathlib.Path:
        return self.tensorboard / "study"

    def tb_epochs(self) -> pathlib.Path:
        return self.tensorboard / "epochs"

    def tb_round(self, k: int) -> pathlib.Path:
        """The older layout's per-round epochs run (studies written before the ``epochs`` run)."""
        return self.tensorboard / f"round_{k:03d}"

    def resumed_flags(self) -> pathlib.Path:
        """The next free ``flags.resumed.N.txt`` (N = 1, 2, ...): never overwrites an earlier one."""
        n = 1
        while (self.root / f"flags.resumed.{n}.txt").exists():
            n += 1
        return self.root / f"flags.resumed.{n}.txt"

    def is_study(self) -> bool:
        return self.config.is_file()


def find_studies(root: PathLike) -> Iterator[pathlib.Path]:
    """Every study directory (config.json and rounds.csv) at or below ``root``, sorted."""
    root = pathlib.Path(root)
    for config in sorted(root.rglob(CONFIG)):
        if (config.parent / ROUNDS).is_file():
            yield config.parent
