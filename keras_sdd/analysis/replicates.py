"""Study directories as records, labelled by what they study and grouped into replicates (same settings, other
seeds), with mean ± std per round. Reads only what studies wrote, tolerating older directories."""
from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from keras_sdd.errors import ConfigError
from keras_sdd.study import paths
from keras_sdd.study.records import read_rounds

#: Settings that differ between replicates or only change how a study runs, not what it computes.
NOT_SETTINGS = {"seed", "logdir", "resume", "resume_from_round", "checkpoint_every_secs", "eval_every_epochs",
                "threads", "steps_per_execution", "input_pipeline", "deterministic", "teacher_flagfile",
                "track_energy", "save_predictions", "co2_country", "data_dir", "download"}


@dataclass
class StudyRecord:
    """One study directory: its config (as written), rows, summary and a human label of what it studies."""

    dir: pathlib.Path
    config: Dict[str, Any]
    rows: List[Dict[str, Any]]
    summary: Dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        c = self.config
        if c.get("study") == "kd":
            teacher = str(c.get("teacher") or "")
            kind = "pruned" if teacher.endswith(":best") or (":round=" in teacher and
                                                             not teacher.endswith(":round=0")) else "dense"
            return f"distillation ({kind} teacher)"
        if c.get("l2"):
            return f"ℓ2 λ={c['l2']:g}"
        return "vanilla IMP"

    @property
    def settings(self) -> Dict[str, Any]:
        """The config with the current defaults filled in where an older study did not record a setting (a study
        written before a setting existed ran with what is now its default)."""
        from keras_sdd.config import StudyConfig

        defaults = json.loads(json.dumps(StudyConfig().to_dict()))
        return {**defaults, **self.config}

    @property
    def key(self) -> str:
        """The settings that define a replicate group (everything but the seed and running options)."""
        return json.dumps({k: v for k, v in sorted(self.settings.items()) if k not in NOT_SETTINGS},
                          sort_keys=True, default=str)


def load_record(study_dir: pathlib.Path) -> StudyRecord:
    p = paths.StudyPaths(study_dir)
    try:
        config = json.loads(p.config.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p.config} cannot be read: {e}") from None
    try:
        summary = json.loads(p.summary.read_text()) if p.summary.exists() else {}
    except ValueError:
        summary = {}
    return StudyRecord(pathlib.Path(study_dir), config, read_rounds(study_dir), summary)


def find_records(roots: Sequence[pathlib.Path]) -> List[StudyRecord]:
    """Every study at or below each root (a study, an ℓ2 group, a sweep); ConfigError for a root holding none."""
    out, seen = [], set()
    for root in roots:
        found = list(paths.find_studies(root))
        if not found:
            raise ConfigError(f"{root} holds no study (no folder with config.json and rounds.csv)")
        for d in found:
            if d.resolve() not in seen:
                seen.add(d.resolve())
                out.append(load_record(d))
    return out


@dataclass
class Group:
    """Replicates of one setting."""

    label: str
    members: List[StudyRecord]

    @property
    def seeds(self) -> List[Any]:
        return [m.config.get("seed") for m in self.members]

    def column(self, key: str) -> np.ndarray:
        """(replicates, rounds) array of ``key`` over the rounds all replicates have (NaN where missing)."""
        n = min(len(m.rows) for m in self.members)
        return np.array([[_f(r.get(key)) for r in m.rows[:n]] for m in self.members], dtype=np.float64)

    def mean_std(self, key: str):
        a = self.column(key)
        with np.errstate(invalid="ignore"):
            return np.nanmean(a, axis=0) if a.size else a, (np.nanstd(a, axis=0) if a.size else a)


def _f(x) -> float:
    return float(x) if isinstance(x, (int, float)) and x is not None else math.nan


def group(records: Sequence[StudyRecord]) -> List[Group]:
    """Replicate groups, in the order their first member appears. Groups of the same kind of study are labelled
    apart by the settings in which they differ, e.g. ``vanilla IMP [gmm_task=xor width=100]``."""
    groups: Dict[str, Group] = {}
    for r in records:
        groups.setdefault(r.key, Group(r.label, [])).members.append(r)
    out = list(groups.values())
    by_label: Dict[str, List[Group]] = {}
    for g in out:
        by_label.setdefault(g.label, []).append(g)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        settings = [{k: v for k, v in g.members[0].settings.items() if k not in NOT_SETTINGS} for g in same]
        differ = sorted({k for st in settings for k in st if any(o.get(k) != st.get(k) for o in settings)})
        for g, st in zip(same, settings):
            g.label = f"{label} [{' '.join(f'{k}={_setting(st.get(k))}' for k in differ)}]"
    return out


def _setting(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "+".join(_setting(x) for x in v)
    return str(v)


def mean_std(values: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
    """Mean and (population) standard deviation of the known values, with how many there were."""
    known = [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(float(v))]
    if not known:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(known)), "std": float(np.std(known)), "n": len(known)}
