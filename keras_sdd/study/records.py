"""What a study records: the round row (defined once, here), ``rounds.csv`` and ``summary.json``.

``COLUMNS`` is the single definition of a round row: the CSV header, the TensorBoard per-round scalars, the
curve and ``read_rounds`` all derive from it, so a new per-round number is one line here. Every write goes to a
temporary file in the same folder and is moved into place with ``os.replace``: an interrupted study never leaves
a half-written row, and a resumed study appends to exactly what was finished. A study written by an older
version (fewer columns) keeps its own header when resumed; ``read_rounds`` fills the columns it lacks with
``None``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from keras_sdd.errors import ConfigError
from keras_sdd.study import paths


@dataclass(frozen=True)
class Column:
    """One field of the round row. ``kind``: 'int', 'float', 'str' or 'json'; ``scalar``: logged to TensorBoard
    per round; ``timing``: measures the run, not the result (differs between two runs of one study)."""

    name: str
    kind: str
    doc: str
    scalar: bool = False
    timing: bool = False


COLUMNS: Sequence[Column] = (
    Column("round", "int", "IMP round (0 = dense)"),
    Column("target_sparsity", "float", "sparsity the round aimed at"),
    Column("sparsity", "float", "global sparsity of the masks", scalar=True),
    Column("remaining_params", "int", "all parameters minus pruned ones"),
    Column("pruned_params", "int", "weights removed by the masks"),
    Column("prunable_params", "int", "weights in pruning scope"),
    Column("total_params", "int", "all parameters of the model"),
    Column("collapsed_layers", "json", "layers pruned to 100 %"),
    Column("epochs", "int", "epochs trained in the round"),
    Column("train_noisy_accuracy", "float", "train accuracy vs the (noisy) training labels", scalar=True),
    Column("train_noisy_loss", "float", "train cross-entropy vs the training labels", scalar=True),
    Column("train_clean_accuracy", "float", "train accuracy vs the true labels", scalar=True),
    Column("train_clean_loss", "float", "train cross-entropy vs the true labels"),
    Column("memorized_fraction", "float", "share of noisy training labels the model fits", scalar=True),
    Column("val_accuracy", "float", "validation accuracy (noisy labels, held out)", scalar=True),
    Column("val_loss", "float", "validation cross-entropy (noisy labels)"),
    Column("val_clean_accuracy", "float", "validation accuracy vs the true labels"),
    Column("test_accuracy", "float", "test accuracy (clean labels)", scalar=True),
    Column("test_loss", "float", "test cross-entropy (clean labels)", scalar=True),
    Column("wall_time_s", "float", "wall time of the round", timing=True),
    Column("per_layer_sparsity", "json", "sparsity of each pruned layer"),
    # calibration of the test predictions (keras_sdd.analysis.calibration)
    Column("ece_clean", "float", "expected calibration error vs the clean test labels", scalar=True),
    Column("ece_noisy", "float", "ECE vs noisy test labels drawn by the study's noise process", scalar=True),
    Column("test_nll", "float", "negative log-likelihood of the clean test labels"),
    Column("test_brier", "float", "multi-class Brier score vs the clean test labels", scalar=True),
    Column("bayes_gap", "float", "mean |p_model(y=1|x) − p_Bayes(y=1|x)| (Gaussian mixtures)", scalar=True),
    # cost (keras_sdd.analysis.flops) and energy (keras_sdd.analysis.energy)
    Column("nonzero_params", "int", "non-zero entries of all weights (biases and normalisation included)",
           scalar=True),
    Column("nonzero_weights", "int", "non-zero kernel weights (Dense/Conv/attention, output layer included; no "
           "biases or normalisation): seed 2's effective parameters", scalar=True),
    Column("inference_flops", "float", "forward FLOPs per example at the round's densities", scalar=True),
    Column("train_flops", "float", "sparse-aware training FLOPs of the round (3 × forward × examples × epochs, "
           "teacher at its own sparse-aware cost)", scalar=True),
    Column("train_flops_cum", "float", "sparse-aware training FLOPs of rounds 0..k", scalar=True),
    Column("train_flops_dense", "float", "seed 1's convention: the dense student's training FLOPs for the epochs "
           "trained (no sparsity discount, no teacher)", scalar=True),
    Column("train_flops_dense_cum", "float", "seed 1's convention, rounds 0..k", scalar=True),
    Column("energy_kwh", "float", "energy of the round (codecarbon)", scalar=True, timing=True),
    Column("energy_kwh_cum", "float", "energy of rounds 0..k", timing=True),
    Column("co2_g", "float", "CO2 of the round in grams (codecarbon, --co2_country)", scalar=True, timing=True),
    Column("co2_g_cum", "float", "CO2 of rounds 0..k", scalar=True, timing=True),
    Column("co2_method", "str", "how energy was obtained: measured (power counters) or estimated", timing=True),
)

NAMES: List[str] = [c.name for c in COLUMNS]
BY_NAME: Dict[str, Column] = {c.name: c for c in COLUMNS}
#: Columns that measure time, not results.
TIME_FIELDS = tuple(c.name for c in COLUMNS if c.timing)
#: Columns logged to TensorBoard once per round.
SCALARS = tuple(c.name for c in COLUMNS if c.scalar)


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    """Writes a temporary file beside ``path`` and moves it into place; a failed write (a full disk) leaves
    ``path`` as it was, removes the temporary file and raises one-line ``StorageError``."""
    from keras_sdd.study.storage import writing

    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, "write the file"):
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise


def atomic_write_json(path: pathlib.Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def parse_value(name: str, text: Optional[str]) -> Any:
    """One CSV cell as the Python value its column holds (unknown columns: float if possible, else text)."""
    column = BY_NAME.get(name)
    kind = column.kind if column else None
    if text is None or (text == "" and kind != "str"):
        return None
    if kind == "json":
        return json.loads(text)
    if kind == "int":
        return int(text)
    if kind == "str":
        return text
    try:
        return float(text)
    except ValueError:
        if kind == "float":
            raise
        return text


class RoundRecords:
    """``rounds.csv`` of one study directory."""

    def __init__(self, study_dir: pathlib.Path):
        self.path = paths.StudyPaths(study_dir).rounds

    def header(self) -> Optional[List[str]]:
        """The file's own header (None: no file yet)."""
        if not self.path.exists():
            return None
        with open(self.path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), None)

    def rows(self) -> List[Dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def done(self) -> List[int]:
        return [int(r["round"]) for r in self.rows()]

    def check(self) -> List[Dict[str, Any]]:
        """Parses the whole file, raising ConfigError naming the file and line of anything damaged (a truncated
        last row, a cell that is not a number, rounds out of order). Returns the parsed rows."""
        if not self.path.exists():
            return []
        try:
            text = self.path.read_text(encoding="utf-8")
            reader = csv.reader(io.StringIO(text, newline=""))
            header = next(reader, None)
            lines = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ConfigError(f"{self.path} cannot be read: {e}") from None
        if text and not text.endswith("\n"):  # every row is written whole, newline included
            raise ConfigError(f"{self.path}: its last row is truncated (no line end); the file is damaged")
        if not header or "round" not in header:
            raise ConfigError(f"{self.path} has no valid header (damaged rounds.csv)")
        out = []
        for i, cells in enumerate(lines, start=2):
            if len(cells) != len(header):
                raise ConfigError(f"{self.path} line {i} has {len(cells)} of {len(header)} fields "
                                  "(a truncated or damaged row)")
            try:
                row = {k: parse_value(k, v) for k, v in zip(header, cells)}
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{self.path} line {i} cannot be parsed ({e})") from None
            if row["round"] != len(out):
                raise ConfigError(f"{self.path} line {i} records round {row['round']} where round {len(out)} "
                                  "was expected")
            out.append(row)
        return out

    def append(self, row: Dict[str, Any]) -> None:
        """Appends one round row; the file's existing header (an older study's columns) is kept."""
        missing = [k for k in NAMES if k not in row]
        if missing:
            raise ValueError(f"round row lacks {missing}")
        if int(row["round"]) in self.done():
            raise ValueError(f"round {row['round']} is already recorded in {self.path}")
        header = self.header() or NAMES
        old = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", extrasaction="ignore")
        if not old:
            writer.writeheader()
        writer.writerow({k: _format(row.get(k)) for k in header})
        atomic_write_text(self.path, old + buf.getvalue())


def read_rounds(study_dir: pathlib.Path) -> List[Dict[str, Any]]:
    """rounds.csv parsed into Python values; every column of ``COLUMNS`` is present (None where the study was
    written without it), plus any extra columns the file holds."""
    out = []
    for r in RoundRecords(study_dir).rows():
        parsed = {name: None for name in NAMES}
        parsed.update({k: parse_value(k, v) for k, v in r.items()})
        out.append(parsed)
    return out


def is_number(value: Any) -> bool:
    """True for a finite or infinite real number (not None, not NaN)."""
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))
