"""The registry of study kinds, dispatched from ``--study``: each a small class over the shared round loop.

- ``sdd``: the sparse double descent study (IMP with the cross-entropy objective).
- ``kd``: the same rounds with the distillation objective, from a dense or pruned teacher (seed 1's antidote).
- ``l2``: one SDD study per λ of ``--l2_values``, each in ``<logdir>/l2=<λ>``, with a combined curve.
A kind checks what it needs before anything is written, then hands an assembly to ``runner.RoundLoop``.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, Optional

from absl import logging

from keras_sdd.config import StudyConfig, validate
from keras_sdd.errors import ConfigError
from keras_sdd.registry import Registry
from keras_sdd.study import directory, loading, paths
from keras_sdd.study.assemble import round_targets
from keras_sdd.study.records import atomic_write_json, read_rounds

STUDY_KINDS = Registry("study kind")


@STUDY_KINDS.register("sdd")
class SDDKind:
    """Round 0 trains the dense model; each later round prunes and retrains; every round is recorded."""

    @staticmethod
    def run(config: StudyConfig, record_files: Optional[Dict[str, str]] = None, **_) -> Dict[str, Any]:
        if config.replicates > 1:
            from keras_sdd.study.packed import run_packed

            return run_packed(config, record_files)
        from keras_sdd.study.runner import run_sdd

        return run_sdd(config, record_files)


def study_finished(study_dir: pathlib.Path) -> bool:
    """True when ``study_dir`` holds a study whose summary says it is complete."""
    try:
        return bool(json.loads(paths.StudyPaths(study_dir).summary.read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def resolve_teacher(config: StudyConfig, teacher_config: Optional[StudyConfig] = None):
    """The teacher model (wrappers stripped) and what the study records about it.

    ``--teacher`` is a study directory (its dense round), ``DIR:best`` (highest validation accuracy),
    ``DIR:round=K``, or a saved Keras model file. With ``teacher_config`` (from ``--teacher_flagfile``) an
    unfinished or absent teacher study is run (or resumed) first, so one command gives the whole pipeline.
    """
    spec = loading.parse_teacher(config.teacher)
    path = pathlib.Path(spec["path"])
    if teacher_config is not None and not study_finished(path):
        tc = teacher_config.replace(logdir=str(path), resume=paths.StudyPaths(path).is_study())
        logging.info("teacher study %s is not finished: running it first", path)
        STUDY_KINDS.get(tc.study).run(validate(tc), None)
    if paths.StudyPaths(path).is_study():
        if spec["select"] == "best":
            loaded = loading.load_best(path, strip=True)
        else:
            loaded = loading.load_round(path, spec["round"], strip=True)
        info = {"source": str(path), "selected": spec["select"], "round": loaded.round,
                "sparsity": loaded.row["sparsity"], "test_accuracy": loaded.row["test_accuracy"],
                "val_accuracy": loaded.row["val_accuracy"], "model": loaded.config.model}
        return loaded.model, info
    if not path.exists():
        raise ConfigError(f"--teacher={config.teacher}: {path} does not exist"
                          + ("" if teacher_config else " (pass --teacher_flagfile to train the teacher first)"))
    if spec["select"] != "dense":
        raise ConfigError(f"--teacher={config.teacher}: {path} is not a study directory, so ':{spec['select']}' "
                          "cannot apply")
    if path.is_dir() and not (path / "saved_model.pb").exists():
        raise ConfigError(f"--teacher={config.teacher}: {path} is neither a study directory (no config.json) nor a "
                          "saved Keras model")
    model = loading.load_saved_model(path)
    return model, {"source": str(path), "selected": "model file", "round": None, "sparsity": None,
                   "test_accuracy": None, "val_accuracy": None, "model": model.name}


@STUDY_KINDS.register("kd")
class KDKind:
    """IMP of the student with the distillation objective in every round; the teacher never changes."""

    @staticmethod
    def run(config: StudyConfig, record_files: Optional[Dict[str, str]] = None,
            teacher_config: Optional[StudyConfig] = None, **_) -> Dict[str, Any]:
        from keras_sdd.study.runner import run_sdd

        directory.plan(config)  # the student's directory is checked before a teacher study is trained
        teacher, info = resolve_teacher(config, teacher_config)
        logging.info("teacher: %s (%s round %s, sparsity %s, test accuracy %s)", info["source"], info["selected"],
                     info["round"], _pct(info["sparsity"]), _pct(info["test_accuracy"]))
        return run_sdd(config, record_files, teacher=teacher, summary_extra={"teacher": info})


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def l2_member_dir(root: pathlib.Path, lam: float) -> pathlib.Path:
    return root / f"l2={lam:g}"


@STUDY_KINDS.register("l2")
class L2Kind:
    """One SDD study per λ (seed 1 §ℓ2: strong ℓ2 mitigates SDD at a sparsity cost), resumable as a whole."""

    @staticmethod
    def members(config: StudyConfig) -> Dict[float, StudyConfig]:
        root = pathlib.Path(config.logdir)
        out = {}
        for lam in config.l2_values:
            d = l2_member_dir(root, lam)
            out[lam] = validate(config.replace(study="sdd", l2=float(lam), l2_values=(), logdir=str(d),
                                               resume=paths.StudyPaths(d).is_study()))
        return out

    @classmethod
    def run(cls, config: StudyConfig, record_files: Optional[Dict[str, str]] = None, **_) -> Dict[str, Any]:
        from keras_sdd.study.board import StudyBoard, curves_png
        from keras_sdd.study.runner import run_sdd

        root = pathlib.Path(config.logdir)
        p = paths.StudyPaths(root)
        directory.check_location(root)
        if p.is_study():
            if not config.resume:
                raise ConfigError(f"{root} already holds a study; pass --resume to continue it, or choose another "
                                  "--logdir")
            directory.compare(directory.read_config(root), config, root)
        elif config.resume:
            raise ConfigError(f"--resume: there is no study in {root} to resume; drop --resume to start one")
        elif root.exists() and any(root.iterdir()):
            raise ConfigError(f"{root} exists and is not an empty folder; choose another --logdir")
        members = cls.members(config)
        for member in members.values():  # every member's directory is checked before anything is written
            if member.resume:
                directory.plan(member)
        root.mkdir(parents=True, exist_ok=True)
        if not p.is_study():
            atomic_write_json(p.config, config.to_dict())
            if record_files and paths.FLAGS in record_files:
                p.flags.write_text(record_files[paths.FLAGS])
        atomic_write_json(p.group, {"kind": "l2", "members": {f"{lam:g}": pathlib.Path(m.logdir).name
                                                               for lam, m in members.items()}})
        summaries = {}
        for lam, member in members.items():
            logging.info("ℓ2 study: λ=%g in %s", lam, member.logdir)
            summaries[f"{lam:g}"] = run_sdd(member, record_files)
        curves = {f"λ={lam:g}": read_rounds(pathlib.Path(m.logdir)) for lam, m in members.items()}
        png = curves_png(curves, title=f"{config.model} on {config.dataset}: test accuracy per ℓ2 weight λ")
        (root / "l2_curves.png").write_bytes(png)
        StudyBoard(root).log_image("l2_curves", png, step=0)
        summary = {"study": "l2", "config": config.to_dict(),
                   "members": {k: {"logdir": s["config"]["logdir"], "complete": s["complete"],
                                   "dense_test_accuracy": s["dense_test_accuracy"],
                                   "best_val_round": s["best_val_round"],
                                   "best_val_round_sparsity": s["best_val_round_sparsity"],
                                   "best_val_round_test_accuracy": s["best_val_round_test_accuracy"]}
                               for k, s in summaries.items()},
                   "complete": all(s["complete"] for s in summaries.values()),
                   "rounds_done": sum(s["rounds_done"] for s in summaries.values()),
                   "rounds_planned": len(round_targets(config)) * len(members)}
        atomic_write_json(p.summary, summary)
        return summary
