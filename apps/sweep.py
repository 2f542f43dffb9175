"""Runs a sweep of studies on Ray: ``python -m apps.sweep --flagfile=configs/sweeps/gmm_widths_cpu.flags``.

Every flag of ``apps.sdd`` fixes a setting of all studies; ``--grid`` names the axes, e.g.
``--grid='width=10,20,50;seed=0,1;gmm_task=linear,xor'`` (``;`` between axes, ``,`` between values, ``+`` between
the items of a list-valued setting). Each grid point is an ordinary study directory under ``--logdir`` named by its
settings (``width=10,seed=0,gmm_task=linear``), with its own ``flags.txt`` (``python -m apps.sdd
--flagfile=<point>/flags.txt --resume`` continues that study alone); ``sweep.json`` records the grid and each
point's status, attempts, error and wall time; ``logs/<point>.log`` holds each study's console output;
``hparams/`` the HParams experiment (the axes and summary metrics), so ``tensorboard --logdir <sweep>`` shows one
row per study in its HParams tab.

Running the same command again resumes (no ``--resume`` needed): finished points are never rerun, interrupted
ones resume from their checkpoints, failed ones are tried again; a point whose settings changed is refused, by
name, before anything starts. On one machine the app starts a local Ray (``--max_parallel`` studies at a time);
on a cluster started with ``ray start --head``, pass ``--ray_address=HOST:PORT`` (or ``auto``) and put
``--logdir`` on a file system every node sees. Then ``python -m apps.report --logdir=<sweep> --out=...``.
Exit codes: 0 all studies done; 2 bad input (one line, nothing written); 3 some studies failed (named; see
sweep.json and logs/).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import os
import pathlib
import sys

from absl import app, flags

from apps import sdd  # the study flags: every one of them may fix a setting or be a grid axis
from keras_sdd import console
from keras_sdd.config import StudyConfig
from keras_sdd.errors import ConfigError

FLAGS = flags.FLAGS
flags.DEFINE_string("grid", None, "Axes of the sweep: 'name=v1,v2;name2=w1,w2' (names are study flags; '+' joins "
                    "the items of a list-valued setting, e.g. classes=0+1,0+1+2).")
flags.DEFINE_integer("max_parallel", None, "Most studies at a time (default: on the local Ray, CPU cores / "
                     "--cpus_per_study, fewer where --gpus_per_study and the GPUs allow fewer; on a cluster, "
                     "as many as its resources hold).", lower_bound=1)
flags.DEFINE_string("ray_address", None, "Join an existing Ray cluster (HOST:PORT of `ray start --head`, or auto) "
                    "instead of starting a local one; --logdir must then be on a file system every node sees.")
flags.DEFINE_float("cpus_per_study", 1.0, "CPUs a study reserves; its TensorFlow threads unless --threads is set.")
flags.DEFINE_float("gpus_per_study", 0.0, "GPUs a study reserves (fractions let small models share a GPU).",
                   lower_bound=0.0)
flags.DEFINE_integer("max_retries", 1, "Retries of a study that raises (or whose worker dies) before it is marked "
                     "failed; each run of the sweep gives failed points this many again.", lower_bound=0)
flags.register_validator("cpus_per_study", lambda v: v > 0, "--cpus_per_study must be positive")

EXIT_FAILED_STUDIES = 3
_FIELDS = {f.name for f in dataclasses.fields(StudyConfig)}
_NOT_AXES = {"logdir", "resume", "resume_from_round"}


def check_axes(grid) -> None:
    for axis in grid:
        if axis not in _FIELDS or axis in _NOT_AXES:
            raise ConfigError(f"--grid: {axis} is not a study setting that can vary (the axes are flags of "
                              "apps.sdd; see python -m apps.sdd --helpfull)")


def _flags_text(fv, name: str, root: pathlib.Path) -> str:
    """The point's flagfile for ``apps.sdd``: every study setting (a StudyConfig field) as the point sets it, and a
    header. (Other flags of this process — this app's, or those of libraries imported here — are left out.)"""
    lines = [fv[f.name].serialize() for f in dataclasses.fields(StudyConfig) if fv[f.name].value is not None]
    return (f"# grid point {name} of the sweep {root} (python -m apps.sweep); this study alone continues with\n"
            f"# python -m apps.sdd --flagfile={root / name / 'flags.txt'} --resume\n" + "\n".join(lines) + "\n")


def points(grid, root: pathlib.Path):
    """Every point's settings, folder, validated config and flags text; ConfigError naming a bad point."""
    from absl import logging

    from keras_sdd.config import validate
    from keras_sdd.sweep.engine import Point
    from keras_sdd.sweep.grid import check_names, expand, flag_value, point_name

    check_axes(grid)
    pts = expand(grid)
    check_names(pts)
    out, seen = [], {}
    verbosity = logging.get_verbosity()
    for settings in pts:
        name = point_name(settings)
        fv = copy.deepcopy(FLAGS)
        args = [f"--{k}={flag_value(v)}" for k, v in settings.items()] + [f"--logdir={root / name}"]
        try:
            fv([sys.argv[0], *args])
            if not fv["threads"].value:
                fv["threads"].value = max(1, int(FLAGS.cpus_per_study))   # TensorFlow threads = its CPUs
            config = validate(sdd.config_from_flags(fv))
        except (flags.Error, ConfigError) as e:
            raise ConfigError(f"grid point {name}: {e}") from None
        finally:
            logging.set_verbosity(verbosity)
        if config.study != "sdd":
            raise ConfigError(f"grid point {name}: a sweep runs --study=sdd studies (got --study={config.study})")
        key = json.dumps({k: v for k, v in config.to_dict().items() if k != "logdir"}, sort_keys=True, default=str)
        if key in seen:
            raise ConfigError(f"--grid: points {seen[key]} and {name} are the same study (values that differ only "
                              "in how they are written)")
        seen[key] = name
        out.append(Point(settings, name, config.to_dict(), _flags_text(fv, name, root)))
    return out


def check_existing(pts) -> None:
    """A point that already has a study must hold the same settings (and, unfinished, be resumable)."""
    from keras_sdd.study import directory, paths
    from keras_sdd.sweep.engine import finished

    for p in pts:
        if not p.dir.exists():
            continue
        config = StudyConfig.from_dict({**p.config, "resume": True})
        try:
            if not paths.StudyPaths(p.dir).is_study():
                directory.plan(config.replace(resume=False))   # an empty folder is fine; anything else refused
            elif finished(p.dir):
                directory.compare(directory.read_config(p.dir), config, p.dir)
            else:
                directory.plan(config)     # reads the checkpoint it will restore
        except ConfigError as e:
            raise ConfigError(f"grid point {p.name}: {e}") from None


#: The sweep's HParams experiment (a TensorBoard run of its own beside the points' folders).
HPARAMS_RUN = "hparams"


def write_hparams_experiment(root: pathlib.Path, grid, pts) -> pathlib.Path:
    """The grid's axes as HParams with their values (as each point's study records them) as domains, and the
    studies' summary metrics: ``tensorboard --logdir <sweep>`` then shows one HParams row per study."""
    from keras_sdd.study.board import write_experiment

    return write_experiment(root / HPARAMS_RUN, {axis: [p.config[axis] for p in pts] for axis in grid})


def main(argv):
    del argv
    console.configure_logging()
    try:
        from keras_sdd.sweep import engine
        from keras_sdd.sweep.grid import parse_grid

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("apps.sweep runs studies on Ray, which is not installed: pip install -e '.[sweep]'")
        if FLAGS.grid is None:
            raise ConfigError("--grid is required, e.g. --grid='width=10,20;seed=0,1'")
        grid = parse_grid(FLAGS.grid)
        check_axes(grid)
        if FLAGS.resume_from_round >= 0:
            raise ConfigError("--resume_from_round applies to one study: python -m apps.sdd "
                              "--flagfile=<sweep>/<point>/flags.txt --resume --resume_from_round=K")
        root = pathlib.Path(FLAGS.logdir).resolve()
        is_sweep = (root / engine.SWEEP_FILE).is_file()
        if FLAGS.resume and not is_sweep:
            raise ConfigError(f"--resume: there is no sweep in {root} to resume (running the same command again "
                              "resumes a sweep; --resume is not needed)")
        from keras_sdd.study import directory

        directory.check_location(root)
        if root.exists() and any(root.iterdir()) and not is_sweep:
            raise ConfigError(f"{root} exists and holds no sweep (no {engine.SWEEP_FILE}); choose another --logdir")
        pts = points(grid, root)
        check_existing(pts)
        sweep = engine.Sweep(root, grid, pts, log=lambda line: print(line, flush=True))
        if not sweep.todo():
            sweep.save()
            print(f"sweep {root}: all {len(pts)} studies already finished; nothing to run. Report: python -m "
                  f"apps.report --logdir={root} --out={root}_report", flush=True)
            return
        if FLAGS.ray_address:
            engine.check_address(FLAGS.ray_address)
        max_parallel = FLAGS.max_parallel or max(1, int((os.cpu_count() or 1) // FLAGS.cpus_per_study))
        slots = engine.connect(FLAGS.ray_address, max_parallel=max_parallel, cpus_per_study=FLAGS.cpus_per_study,
                               gpus_per_study=FLAGS.gpus_per_study)
    except ConfigError as e:
        console.refuse(e)
    if FLAGS.ray_address and FLAGS.max_parallel:
        slots = min(slots, FLAGS.max_parallel)
    axes = " × ".join(f"{len(v)} {k}" for k, v in grid.items())
    where = f"Ray at {FLAGS.ray_address}" if FLAGS.ray_address else "local Ray"
    print(f"sweep {root}: {len(pts)} studies ({axes}), {slots} at a time on {where}; logs in {root / engine.LOGS}",
          flush=True)
    try:
        write_hparams_experiment(root, grid, pts)   # only once every check passed and there is work to do
    except OSError as e:
        engine.disconnect()
        console.refuse(e)
    try:
        failed = sweep.run(slots=slots, cpus_per_study=FLAGS.cpus_per_study, gpus_per_study=FLAGS.gpus_per_study,
                           max_retries=FLAGS.max_retries)
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to resume {root}", file=sys.stderr)
        sys.exit(130)
    finally:
        engine.disconnect()
    if failed:
        print(f"error: {len(failed)} of {len(pts)} studies failed: {', '.join(failed)} (see {root}/sweep.json and "
              f"{root}/{engine.LOGS}/)", file=sys.stderr)
        sys.exit(EXIT_FAILED_STUDIES)
    print(f"sweep done: {len(pts)} studies in {root}; report: python -m apps.report --logdir={root} "
          f"--out={root}_report", flush=True)


def run():
    """Console entry point (``keras-sdd-sweep``)."""
    app.run(main, flags_parser=console.parse_flags)


if __name__ == "__main__":
    run()
