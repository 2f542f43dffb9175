"""What an export will do, checked before any model or data is touched: the study directory, the round, the
format and quantization, and ``--out``. Imports no TensorFlow, so bad input is refused in a fraction of a second.

``--out`` must lie outside the study directory, in an existing folder this process can write in; an existing file
there is replaced (atomically), an existing folder never.
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List

from keras_sdd.config import StudyConfig
from keras_sdd.errors import ConfigError
from keras_sdd.export.selection import resolve_round
from keras_sdd.study import paths
from keras_sdd.study.records import RoundRecords

FORMATS = ("tflite", "saved_model", "keras")
QUANTIZE = ("none", "dynamic", "int8")


@dataclass(frozen=True)
class ExportPlan:
    """What ``export_study`` will do, every setting checked."""

    study_dir: pathlib.Path
    config: StudyConfig
    rows: List[Dict[str, Any]]
    round: int
    fmt: str
    quantize: str
    out: pathlib.Path


def check_options(fmt: str, quantize: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format={fmt}: choose one of {', '.join(FORMATS)}")
    if quantize not in QUANTIZE:
        raise ConfigError(f"--quantize={quantize}: choose one of {', '.join(QUANTIZE)}")
    if quantize != "none" and fmt != "tflite":
        raise ConfigError(f"--quantize={quantize} applies to --format=tflite only (a {fmt} export keeps float32 "
                          "weights)")


def _inside(path: pathlib.Path, folder: pathlib.Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_out(out, fmt: str, study_dir=None) -> pathlib.Path:
    """``out`` as a path, after checking that the export can be written there; ConfigError otherwise."""
    if out is None or not str(out).strip():
        raise ConfigError("--out must name the file (or SavedModel folder) to write")
    out = pathlib.Path(out)
    parent = out.parent
    if study_dir is not None and _inside(out, pathlib.Path(study_dir)):
        raise ConfigError(f"--out={out} lies inside the study directory {study_dir}; a study directory is never "
                          "written to, choose another place")
    if not parent.is_dir():
        raise ConfigError(f"--out={out}: {parent} is not an existing folder")
    if fmt == "keras" and out.suffix != ".keras":
        raise ConfigError(f"--out={out}: a Keras export must be named *.keras")
    if fmt == "saved_model" and out.exists():
        raise ConfigError(f"--out={out} exists; a SavedModel is a folder and is never written over, choose a new "
                          "name")
    if out.is_dir():
        raise ConfigError(f"--out={out} is a folder; name the file to write")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"--out={out}: cannot write in {parent}: {e.strerror or e}") from None
    return out


def read_study(root: pathlib.Path):
    """(config, parsed rounds.csv rows) of a finished study, read only; ConfigError for anything else."""
    p = paths.StudyPaths(root)
    if not root.is_dir():
        raise ConfigError(f"--study_dir={root}: no such folder")
    if not p.is_study():
        raise ConfigError(f"--study_dir={root} is not a study directory (no {paths.CONFIG})")
    try:
        config = StudyConfig.from_dict(json.loads(p.config.read_text(encoding="utf-8")))
    except (ValueError, TypeError, OSError, UnicodeDecodeError, ConfigError) as e:
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ConfigError(f"{p.config} is damaged ({first})") from None
    rows = RoundRecords(root).check()
    if not rows:
        raise ConfigError(f"--study_dir={root} has no finished round yet")
    return config, rows


def plan_export(study_dir, round_spec="best_val", fmt: str = "tflite", quantize: str = "none",
                out=None) -> ExportPlan:
    """Every check that needs no model or data; ConfigError (one line) for anything that cannot work."""
    check_options(fmt, quantize)
    root = pathlib.Path(study_dir)
    config, rows = read_study(root)
    k = resolve_round(round_spec, rows)
    return ExportPlan(root, config, rows, k, fmt, quantize, check_out(out, fmt, root))
