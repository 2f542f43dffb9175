"""Runs a sweep's studies as Ray core tasks, one fresh worker process per study, and records their states.

- Embedded: ``connect(None, ...)`` starts a local Ray on loopback with ``max_parallel × cpus_per_study`` CPUs (no
  dashboard, no usage statistics: it starts offline); with an ``address`` it joins an existing cluster
  (``ray start --head``) instead, after ``check_address`` has found a Ray head answering there.
- Each study is an ordinary study directory under the sweep folder, which must be a path every node sees (a
  shared file system); workers read and write it directly and the driver reads results from there: nothing but a
  few numbers travels through Ray. A study's console output goes to ``<sweep>/logs/<point>.log``.
- A task runs in a fresh worker process (``max_calls=1``: TensorFlow state never carries over) holding a lock on
  its point's log file, so a point is run by one process at a time, even while a worker orphaned by a killed
  driver is still winding down.
- Resumable point by point: a finished point is never rerun; an interrupted one resumes from its checkpoint (each
  attempt decides ``resume`` from what is on disk). A study that raises, or whose worker dies, is retried
  ``max_retries`` times by the driver, then marked ``failed`` in ``sweep.json`` with its error while the others
  go on.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from keras_sdd.errors import ConfigError
from keras_sdd.study import paths
from keras_sdd.study.records import atomic_write_json

SWEEP_FILE = "sweep.json"
LOGS = "logs"
#: Seconds to wait for a Ray head to answer (``check_address``).
PROBE_TIMEOUT_S = 3.0


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
    """True when the study's ``summary.json`` says it is complete."""
    try:
        return bool(json.loads(paths.StudyPaths(study_dir).summary.read_text()).get("complete"))
    except (OSError, ValueError, AttributeError):
        return False


def log_path(root: pathlib.Path, name: str) -> pathlib.Path:
    return pathlib.Path(root) / LOGS / f"{name}.log"


# --- the Ray task ------------------------------------------------------------------------------------------------

def run_point(config: Dict[str, Any], flags_text: str, log_file: str, gpus: float) -> Dict[str, Any]:
    """The Ray task: runs (or resumes) one study in this fresh worker process; returns its wall time.

    The worker writes its console output into ``log_file`` and holds a lock on it while the study runs."""
    import fcntl
    import sys

    t0 = time.monotonic()
    log = pathlib.Path(log_file)
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX)   # waits while another process (e.g. an orphaned worker) still runs this point
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__   # Ray's worker streams -> this log file
    if not gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""          # a CPU study never takes a GPU's memory
    else:
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")   # studies sharing a GPU (fractions)
    print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} attempt on {socket.gethostname()} (pid {os.getpid()})",
          flush=True)
    from keras_sdd import console

    console.quiet_native_logs([])   # before TensorFlow loads (fresh process: it has not)
    import keras_sdd.legacy_keras  # noqa: F401  (pins Keras 2 before TensorFlow loads)
    from keras_sdd import process
    from keras_sdd.config import StudyConfig, validate
    from keras_sdd.study import runner

    import logging as std_logging

    from absl import flags as absl_flags
    from absl import logging as absl_logging

    absl_flags.FLAGS.mark_as_parsed()   # no command line in a worker: absl's defaults, without its warning
    for h in list(std_logging.getLogger().handlers):   # Ray's worker handler: absl's short lines instead
        std_logging.getLogger().removeHandler(h)
    absl_logging.use_absl_handler()
    console.configure_logging()
    try:
        c = StudyConfig.from_dict(config)
        c = validate(c.replace(resume=paths.StudyPaths(c.logdir).is_study()))
        process.setup_for(c)
        summary = runner.run_study(c, record_files={paths.FLAGS: flags_text})
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        raise
    return {"complete": bool(summary.get("complete")), "wall_s": time.monotonic() - t0,
            "host": socket.gethostname()}


# --- connecting ----------------------------------------------------------------------------------------------------

def _resolve_auto() -> Optional[str]:
    """The address ``auto`` stands for: RAY_ADDRESS, else the cluster this machine last started (Ray's record)."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        from ray._private.services import find_bootstrap_address

        return find_bootstrap_address(None)
    except Exception:  # noqa: BLE001  (Ray's private helper moved: leave the address to ray.init)
        return None


def check_address(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """A Ray head must answer at ``address`` (HOST:PORT, or ``auto``) within seconds: something listens there and
    speaks HTTP/2 as Ray's GCS (gRPC) does. ConfigError otherwise."""
    target = address
    if address == "auto":
        target = _resolve_auto()
        if target is None:
            raise ConfigError("--ray_address=auto: no running Ray cluster is known on this machine (no RAY_ADDRESS, "
                              "no `ray start --head` here); give HOST:PORT, or drop --ray_address to run locally")
    host, _, port = target.rpartition(":")
    if target.startswith("ray://"):
        raise ConfigError(f"--ray_address={address}: Ray Client (ray://) addresses are not supported; give the "
                          "head's GCS address HOST:PORT (the --port of `ray start --head`, 6379 by default)")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray_address={address} must be HOST:PORT (e.g. 10.0.0.1:6379) or auto")
    name = f"--ray_address={address}" + (f" ({target})" if target != address else "")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            # The HTTP/2 client preface and an empty SETTINGS frame; a gRPC server answers with a SETTINGS frame.
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            head = b""
            while len(head) < 9:
                chunk = s.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except OSError as e:
        raise ConfigError(f"{name}: no Ray head answers there ({e.strerror or e}); start one with `ray start "
                          "--head`, or drop --ray_address to run on this machine") from None
    if len(head) < 9 or head[3] != 0x04:
        raise ConfigError(f"{name}: something listens there but it is not a Ray head (give the GCS port of "
                          "`ray start --head`, 6379 by default)")


def _token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (pathlib.Path.home() / ".ray" / "auth_token").is_file())


def connect(address: Optional[str], *, max_parallel: int, cpus_per_study: float, gpus_per_study: float) -> int:
    """Starts the embedded Ray (``address`` None) or joins a cluster; returns how many studies fit at a time.
    ConfigError when the cluster cannot be joined or cannot hold one study."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")       # offline: no usage statistics
    if address:
        if "RAY_AUTH_MODE" not in os.environ and _token_available():
            os.environ["RAY_AUTH_MODE"] = "token"   # a token-protected cluster needs it; others ignore the token
        os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", "10")  # a refused driver gives up in ~10 s, not ~20 s
    else:
        # A local Ray for this machine only: its processes talk over loopback, never the machine's other addresses
        # (Ray's setting, named for the platforms where it is the default); token authentication as Ray's default,
        # said explicitly so that Ray does not print it.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    init = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR")
    try:
        if address:
            ray.init(address=address, **init)
        else:
            ray.init(address="local", num_cpus=max(1, math.ceil(max_parallel * cpus_per_study)),
                     num_gpus=None if gpus_per_study else 0, **init)
    except Exception as e:  # noqa: BLE001  (Ray's own errors: one line, exit 2)
        hint = ("; if the cluster uses token authentication, give this driver its token (RAY_AUTH_MODE=token "
                "and ~/.ray/auth_token or RAY_AUTH_TOKEN)" if address else "")
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"Ray could not {'join ' + address if address else 'start'}: {first}{hint}") from None
    resources = ray.cluster_resources()
    slots = resources.get("CPU", 0.0) / cpus_per_study
    if gpus_per_study:
        slots = min(slots, resources.get("GPU", 0.0) / gpus_per_study)
    if slots < 1:
        ray.shutdown()
        raise ConfigError(f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs) "
                          f"cannot hold one study of --cpus_per_study={cpus_per_study:g} "
                          f"--gpus_per_study={gpus_per_study:g}")
    return int(slots) if address else min(int(slots), max_parallel)


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


# --- the sweep -----------------------------------------------------------------------------------------------------

def _summary_line(p: Point) -> str:
    """Best validation round and effective parameters (Definition 2: its non-zero weights) of a finished point,
    read from its directory."""
    from keras_sdd.analysis import curves
    from keras_sdd.study.records import read_rounds

    try:
        rows = read_rounds(p.dir)
    except Exception as e:  # noqa: BLE001  (a progress line must not stop the sweep)
        return f"finished, but its rounds.csv could not be read ({e})"
    k = curves.best_round(rows, "val_accuracy")
    if k is None:
        return f"{len(rows)} rounds, no validation accuracy"
    r = rows[k]
    eff = curves.effective_params(r)["value"]
    test = f", test {100 * r['test_accuracy']:.1f}%" if isinstance(r.get("test_accuracy"), float) else ""
    return (f"best round {k} of {len(rows) - 1} ({100 * r['sparsity']:.2f}% sparse{test}), effective params "
            f"{'n/a' if eff is None else f'{eff:,}'}")


def _error_text(e: BaseException) -> str:
    """The study's own error (``ExcType: message``) from Ray's wrapper, on one line."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        text = f"{type(cause).__name__}: {cause}"
    else:
        lines = [line for line in str(e).strip().splitlines() if line.strip()]
        text = lines[-1] if lines else type(e).__name__
    return " ".join(text.split())[:400]


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class Sweep:
    """The state of one sweep folder (``sweep.json``) and the loop that runs its unfinished points.

    A point's status is derived from its directory when the sweep starts (``done`` when its summary says complete,
    else ``pending``); ``attempts`` and ``wall_s`` add up over every run of the sweep."""

    def __init__(self, root: pathlib.Path, grid: Dict[str, List[str]], points: List[Point],
                 log: Callable[[str], None] = print):
        self.root, self.grid, self.points, self.log = pathlib.Path(root), grid, points, log
        self.state: Dict[str, Dict[str, Any]] = {}
        previous = self.root / SWEEP_FILE
        if previous.exists():
            try:
                self.state = json.loads(previous.read_text())["points"]
                assert isinstance(self.state, dict)
            except (ValueError, KeyError, TypeError, AssertionError):
                raise ConfigError(f"{previous} is damaged; it records the sweep's points (move it away: it is "
                                  "rebuilt from the study directories, without their attempt counts)") from None
        for p in points:
            entry = self.state.setdefault(p.name, {"attempts": 0, "error": None, "wall_s": 0.0})
            entry.update(settings=p.settings, dir=p.name, log=f"{LOGS}/{p.name}.log",
                         status="done" if finished(p.dir) else "pending")

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.root / SWEEP_FILE, {
            "grid": [[axis, values] for axis, values in self.grid.items()],
            "counts": {s: sum(self.state[p.name]["status"] == s for p in self.points)
                       for s in ("done", "running", "pending", "failed")},
            "points": self.state})

    def todo(self) -> List[Point]:
        return [p for p in self.points if self.state[p.name]["status"] != "done"]

    def run(self, *, slots: int, cpus_per_study: float, gpus_per_study: float, max_retries: int) -> List[str]:
        """Runs every point not done on the connected Ray, at most ``slots`` at a time (so that ``running`` in
        sweep.json means running); returns the names of the points that failed."""
        import collections

        import ray

        queue = collections.deque(self.todo())
        n, done_before = len(self.points), len(self.points) - len(queue)
        if done_before:
            self.log(f"{done_before} of {n} studies already finished; never rerun")
        task = ray.remote(num_cpus=cpus_per_study, num_gpus=gpus_per_study, max_calls=1, max_retries=0,
                          retry_exceptions=False)(run_point)   # max_calls=1: a fresh process for every study
        running: Dict[Any, Point] = {}
        tries: Dict[str, int] = {}
        failed: List[str] = []
        durations: List[float] = []
        t0 = time.monotonic()

        def fill() -> None:
            while queue and len(running) < max(1, slots):
                p = queue.popleft()
                running[task.remote(p.config, p.flags_text, str(log_path(self.root, p.name)), gpus_per_study)] = p
                tries[p.name] = tries.get(p.name, 0) + 1
                entry = self.state[p.name]
                entry.update(status="running", attempts=entry.get("attempts", 0) + 1)
            self.save()

        fill()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            p = running.pop(ready[0])
            entry = self.state[p.name]
            try:
                result = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001  (the study's own error, or its worker died)
                entry["error"] = _error_text(e)
                if tries[p.name] <= max_retries:
                    self.log(f"[retry] {p.name}: attempt {tries[p.name]} failed ({entry['error']}); trying again "
                             f"({tries[p.name] + 1} of {max_retries + 1})")
                    entry["status"] = "pending"
                    queue.appendleft(p)
                    fill()
                    continue
                entry["status"] = "failed"
                failed.append(p.name)
                detail = (f"FAILED after {tries[p.name]} attempt(s): {entry['error']} "
                          f"(log: {self.root / entry['log']})")
            else:
                durations.append(result["wall_s"])
                entry.update(status="done" if result["complete"] else "failed", error=None,
                             wall_s=round(entry.get("wall_s", 0.0) + result["wall_s"], 2))
                if result["complete"]:
                    detail = f"{_summary_line(p)}, {_fmt_s(result['wall_s'])}"
                else:
                    entry["error"] = "the study ended without completing"
                    failed.append(p.name)
                    detail = f"FAILED: {entry['error']}"
            fill()
            left = len(running) + len(queue)
            mean = sum(durations) / len(durations) if durations else 0.0
            eta = math.ceil(left / max(1, slots)) * mean
            self.log(f"[{n - left}/{n}] {p.name}: {detail}  ({_fmt_s(time.monotonic() - t0)} elapsed"
                     + (f", ~{_fmt_s(eta)} left)" if left and durations else ")"))
        return failed
