"""Runs a sweep's studies as Ray core tasks, one fresh worker process per study, and records their states.

- Embedded: the driver starts a local Ray with ``max_parallel × cpus_per_study`` CPUs, so a sweep just runs on a
  laptop; with ``address`` it joins an existing cluster (``ray start --head``) instead.
- Each study is an ordinary study directory under the sweep folder, which must be a path every node sees (a
  shared file system); workers read and write it directly, and the driver reads results from there: nothing
  but a few numbers travels through Ray.
- Resumable point by point: a finished point is never rerun; an interrupted one resumes from its checkpoint
  (each attempt decides ``--resume`` from what is on disk). A study that raises is retried ``max_retries``
  times by Ray, then marked ``failed`` in ``sweep.json`` with its error while the others go on.
"""
from __future__ import annotations

import json
import pathlib
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from keras_sdd.errors import ConfigError
from keras_sdd.study import paths
from keras_sdd.study.records import atomic_write_json

SWEEP_FILE = "sweep.json"


@dataclass
class Point:
    """One grid point: its settings, folder name, full study config (as a dict) and the flags that made it."""

    settings: Dict[str, str]
    name: str
    config: Dict[str, Any]
    flags_text: str

    @property
    def dir(self) -> pathlib.Path:
        return pathlib.Path(self.config["logdir"])


def finished(study_dir: pathlib.Path) -> bool:
    try:
        return bool(json.loads(paths.StudyPaths(study_dir).summary.read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def run_point(config: Dict[str, Any], flags_text: str) -> Dict[str, Any]:
    """The Ray task: runs (or resumes) one study in this worker process; returns its wall time."""
    import keras_sdd  # noqa: F401  (pins Keras 2 before TensorFlow loads)
    from keras_sdd import process
    from keras_sdd.config import StudyConfig, validate
    from keras_sdd.study import runner

    c = StudyConfig.from_dict(config)
    c = validate(c.replace(resume=paths.StudyPaths(c.logdir).is_study()))
    process.setup_for(c)
    t0 = time.monotonic()
    summary = runner.run_study(c, record_files={paths.FLAGS: flags_text})
    return {"complete": bool(summary.get("complete")), "wall_s": time.monotonic() - t0}


def check_address(address: str, timeout: float = 3.0) -> None:
    """A ``HOST:PORT`` address must accept a connection within seconds (``auto`` is left to Ray)."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray_address={address} must be HOST:PORT (e.g. 127.0.0.1:6379) or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"--ray_address={address}: no Ray head answers there ({e.strerror or e}); start one "
                          "with `ray start --head`, or drop --ray_address to run on this machine") from None


def _summary_line(p: Point) -> str:
    """Best validation round and effective parameters of a finished point, read from its directory."""
    from keras_sdd.analysis import curves
    from keras_sdd.study.records import read_rounds

    rows = read_rounds(p.dir)
    k = curves.best_round(rows, "val_accuracy")
    if k is None:
        return "no validation accuracy"
    eff = curves.effective_params(rows[k])["value"]
    return (f"best round {k} ({100 * rows[k]['sparsity']:.2f}% sparse, test {100 * rows[k]['test_accuracy']:.1f}%),"
            f" effective params {eff}")


class Sweep:
    """The state of one sweep folder (``sweep.json``) and the loop that runs its pending points."""

    def __init__(self, root: pathlib.Path, grid: Dict[str, List[str]], points: List[Point],
                 log: Callable[[str], None] = print):
        self.root, self.grid, self.points, self.log = root, grid, points, log
        self.state: Dict[str, Dict[str, Any]] = {}
        previous = self.root / SWEEP_FILE
        if previous.exists():
            try:
                self.state = json.loads(previous.read_text()).get("points", {})
            except ValueError:
                raise ConfigError(f"{previous} is damaged; it records the sweep's points") from None
        for p in points:
            entry = self.state.setdefault(p.name, {"settings": p.settings, "status": "pending", "attempts": 0})
            if finished(p.dir):
                entry["status"] = "done"

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.root / SWEEP_FILE, {"grid": [[axis, values] for axis, values in self.grid.items()],
                                                   "points": self.state})

    def run(self, *, max_parallel: int, address: Optional[str], cpus_per_study: float, gpus_per_study: float,
            max_retries: int) -> List[str]:
        """Runs every point not done; returns the names of the points that failed."""
        import os

        if not address:
            # A local Ray for this machine only: its processes talk over loopback, never the machine's other
            # addresses (Ray's setting, named for the platforms where it is the default).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        todo = [p for p in self.points if self.state[p.name]["status"] != "done"]
        done_before = len(self.points) - len(todo)
        if done_before:
            self.log(f"{done_before} of {len(self.points)} studies already finished; never rerun")
        self.save()
        if not todo:
            return []
        init = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address:
            ray.init(address=address, **init)
        else:
            ray.init(num_cpus=max(1, int(max_parallel * cpus_per_study)),
                     num_gpus=None if gpus_per_study else 0, **init)
        try:
            task = ray.remote(num_cpus=cpus_per_study, num_gpus=gpus_per_study, max_retries=max_retries,
                              retry_exceptions=True, max_calls=1)(run_point)   # max_calls=1: a fresh process each
            running = {}
            for p in todo:
                running[task.remote(p.config, p.flags_text)] = p
                self.state[p.name].update(status="running", attempts=self.state[p.name].get("attempts", 0) + 1)
            self.save()
            failed, t0 = [], time.monotonic()
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                p = running.pop(ready[0])
                entry = self.state[p.name]
                try:
                    result = ray.get(ready[0])
                    entry.update(status="done", wall_s=result["wall_s"], error=None)
                    detail = f"{_summary_line(p)}, {result['wall_s']:.0f}s"
                except Exception as e:  # noqa: BLE001  (a study's own error, after Ray's retries)
                    lines = [line for line in str(e).strip().splitlines() if line.strip()]
                    entry.update(status="failed", error=lines[-1][:300] if lines else type(e).__name__,
                                 attempts=max_retries + 1)
                    failed.append(p.name)
                    detail = f"FAILED after {max_retries + 1} attempt(s): {entry['error']}"
                self.save()
                n_done = len(self.points) - len(running)
                left = len(running) * (time.monotonic() - t0) / max(1, n_done - done_before) / max(1, max_parallel)
                self.log(f"[{n_done}/{len(self.points)}] {p.name}: {detail} "
                         f"[{time.monotonic() - t0:.0f}s elapsed, ~{left:.0f}s left]")
            return failed
        finally:
            ray.shutdown()
