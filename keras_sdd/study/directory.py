"""The rules of a study directory: may a study start or resume here, and from where? (One module owns them.)

``plan`` reads and checks everything a run will rely on — the location, ``config.json``, ``rounds.csv``,
``latest.json``, the checkpoint that will be restored (read whole), the rewind weights — and writes nothing.
Only once a plan exists (and data and model are known good) does ``create`` write: a refused run leaves an
existing study byte-identical. A study directory is the user's data: nothing here deletes or rewrites it.
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from keras_sdd.config import RESUMABLE_CHANGES, StudyConfig
from keras_sdd.errors import ConfigError
from keras_sdd.study import checkpoints, paths
from keras_sdd.study.records import RoundRecords, atomic_write_json


@dataclass
class Plan:
    """Where a run starts. ``restore``: checkpoint prefix to restore (None: fresh start); ``round``/``epoch``:
    the position after restoring; ``rows``: rounds already recorded; ``resumed``: the directory held a study."""

    root: pathlib.Path
    resumed: bool = False
    rows: List[Dict[str, Any]] = field(default_factory=list)
    restore: Optional[pathlib.Path] = None
    round: int = 0
    epoch: int = 0
    note: str = ""

    @property
    def paths(self) -> paths.StudyPaths:
        return paths.StudyPaths(self.root)


def _probe_writable(folder: pathlib.Path) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".keras_sdd_probe", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise ConfigError(f"cannot write in {folder}: {e.strerror or e}") from None


def check_location(root: pathlib.Path) -> None:
    """The study folder (or, when it does not exist yet, its nearest existing parent) must be a writable folder;
    no component of the path may be a file."""
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--logdir={root}: {probe} is a file, not a folder")
    _probe_writable(probe)


def read_config(root: pathlib.Path) -> StudyConfig:
    """The study's ``config.json``; ConfigError when it is damaged."""
    p = paths.StudyPaths(root).config
    try:
        return StudyConfig.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (ValueError, TypeError, OSError, UnicodeDecodeError, ConfigError) as e:
        raise ConfigError(f"{p} is damaged ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}); "
                          "it cannot be resumed") from None


def compare(old: StudyConfig, new: StudyConfig, root: pathlib.Path) -> None:
    """Refuses to resume with settings that differ from the saved ones (except RESUMABLE_CHANGES)."""
    keep = {k: getattr(new, k) for k in RESUMABLE_CHANGES}
    if old.replace(**keep) != new:
        diff = [f"--{k}: {getattr(old, k)!r} -> {getattr(new, k)!r}"
                for k in new.to_dict() if getattr(old, k) != getattr(new, k) and k not in keep]
        raise ConfigError(f"cannot resume {root}: settings differ from the saved study ({'; '.join(diff)})")


def _intact(prefix: pathlib.Path) -> bool:
    try:
        checkpoints.verify(prefix)
        return True
    except ConfigError:
        return False


def plan(config: StudyConfig) -> Plan:
    """Checks, writing nothing, that the study may run in ``config.logdir``; returns where it starts."""
    root = pathlib.Path(config.logdir)
    p = paths.StudyPaths(root)
    check_location(root)
    if not p.config.exists():
        if config.resume and not (root.is_dir() and any(root.iterdir())):
            raise ConfigError(f"--resume: there is no study in {root} to resume; drop --resume to start one")
        if root.exists() and any(root.iterdir()):
            raise ConfigError(f"{root} exists and is not an empty folder; choose another --logdir")
        return Plan(root)
    if not config.resume:
        raise ConfigError(f"{root} already holds a study; pass --resume to continue it, or choose another --logdir")
    compare(read_config(root), config, root)
    rows = RoundRecords(root).check()
    n = len(rows)
    pointer = checkpoints.read_pointer(root)
    k = config.resume_from_round
    if k >= 0:
        if k != n - 1:
            raise ConfigError(f"--resume_from_round={k}: {root} records rounds 0..{n - 1}; only the last recorded "
                              f"round ({n - 1}) can be resumed from without rewriting rounds.csv")
        prefix = p.round_checkpoint(k)
        checkpoints.verify(prefix)
        return Plan(root, True, rows, prefix, k, -1, f"restarting round {k + 1} from round {k}'s checkpoint")
    if pointer is None:
        if n:
            raise ConfigError(f"cannot resume {root}: rounds.csv has rounds but checkpoints/ holds no checkpoint "
                              "to continue from; start a new study in another --logdir")
        return Plan(root, True, rows)
    if not (pointer.round == n or (pointer.round == n - 1 and pointer.is_round)):
        raise ConfigError(f"cannot resume {root}: its latest checkpoint is of round {pointer.round}, epoch "
                          f"{pointer.epoch}, but rounds.csv records {n} round(s)")
    try:
        checkpoints.verify(pointer.prefix)
    except ConfigError as e:
        if n and _intact(p.round_checkpoint(n - 1)):
            raise ConfigError(f"{e}; round {n - 1}'s checkpoint is intact: pass --resume_from_round={n - 1} to "
                              f"restart round {n} from its beginning") from None
        raise ConfigError(f"{e}; no intact checkpoint to resume from") from None
    if config.retrain == "weight_rewind" and n and not p.rewind.is_file():
        raise ConfigError(f"cannot resume {root}: {p.rewind.name} (the weights to rewind to) is missing")
    return Plan(root, True, rows, pointer.prefix, pointer.round, pointer.epoch)


def create(plan_: Plan, config: StudyConfig, record_files: Optional[Dict[str, str]] = None) -> None:
    """Creates the folder with ``config.json`` (kept as it is when resuming) and ``record_files`` (e.g. the
    app's ``flags.txt``; each resume writes the next ``flags.resumed.N.txt``, never overwriting)."""
    p = plan_.paths
    p.root.mkdir(parents=True, exist_ok=True)
    if not plan_.resumed:
        atomic_write_json(p.config, config.to_dict())
    for name, text in (record_files or {}).items():
        path = p.root / name
        if plan_.resumed and name == paths.FLAGS:
            path = p.resumed_flags()
        elif plan_.resumed and path.exists():
            continue
        path.write_text(text)
