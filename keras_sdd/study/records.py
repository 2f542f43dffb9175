"""What a study writes: ``rounds.csv`` (one row per finished round) and ``summary.json``, both atomically.

Every write goes to a temporary file in the same folder and is moved into place with ``os.replace``, so an
interrupted study never leaves a half-written row, and a resumed study appends to exactly what was finished.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pathlib
from typing import Any, Dict, List

#: The columns of rounds.csv, in order.
ROUND_FIELDS = [
    "round", "target_sparsity", "sparsity", "remaining_params", "pruned_params", "prunable_params",
    "total_params", "collapsed_layers", "epochs",
    "train_noisy_accuracy", "train_noisy_loss", "train_clean_accuracy", "train_clean_loss",
    "memorized_fraction",
    "val_accuracy", "val_loss", "val_clean_accuracy",
    "test_accuracy", "test_loss",
    "wall_time_s", "per_layer_sparsity",
]
#: Columns that measure time, not results: they differ between two runs of the same study.
TIME_FIELDS = ("wall_time_s",)


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: pathlib.Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


class RoundRecords:
    """rounds.csv of one study directory."""

    def __init__(self, study_dir: pathlib.Path):
        self.path = pathlib.Path(study_dir) / "rounds.csv"

    def rows(self) -> List[Dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def done(self) -> List[int]:
        return [int(r["round"]) for r in self.rows()]

    def append(self, row: Dict[str, Any]) -> None:
        missing = [k for k in ROUND_FIELDS if k not in row]
        if missing:
            raise ValueError(f"round row lacks {missing}")
        if int(row["round"]) in self.done():
            raise ValueError(f"round {row['round']} is already recorded in {self.path}")
        old = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=ROUND_FIELDS, lineterminator="\n")
        if not old:
            writer.writeheader()
        writer.writerow({k: _format(row[k]) for k in ROUND_FIELDS})
        atomic_write_text(self.path, old + buf.getvalue())


def read_rounds(study_dir: pathlib.Path) -> List[Dict[str, Any]]:
    """rounds.csv parsed into numbers (ints, floats, lists/dicts for the JSON columns)."""
    out = []
    for r in RoundRecords(study_dir).rows():
        parsed: Dict[str, Any] = {}
        for k, v in r.items():
            if k in ("collapsed_layers", "per_layer_sparsity"):
                parsed[k] = json.loads(v) if v else None
            elif k in ("round", "epochs", "remaining_params", "pruned_params", "prunable_params", "total_params"):
                parsed[k] = int(v)
            else:
                parsed[k] = float(v) if v not in ("", "nan") else float("nan")
        out.append(parsed)
    return out
