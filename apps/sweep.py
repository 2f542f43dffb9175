"""Runs a sweep of studies on Ray: ``python -m apps.sweep --flagfile=configs/sweeps/gmm_widths_cpu.flags``.

Every flag of ``apps.sdd`` fixes a setting of all studies; ``--grid`` names the axes, e.g.
``--grid='width=10,20,50;seed=0,1;gmm_task=linear,xor'``. Each grid point is an ordinary study directory under
``--logdir`` named by its settings, with its own ``flags.txt``; ``sweep.json`` records the grid and each point's
state. Running the same command again resumes: finished points are never rerun, interrupted ones resume from
their checkpoints. On one machine the app starts a local Ray (``--max_parallel`` studies at a time); on a cluster
started with ``ray start --head``, pass ``--ray_address=HOST:PORT`` (or ``auto``) and put ``--logdir`` on a
file system every node sees. Then ``python -m apps.report --logdir=<sweep> --out=...`` aggregates it.
Exit codes: 0 all studies done; 2 bad input (nothing written); 3 some studies failed (named; see sweep.json).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import pathlib
import sys

from absl import app, flags

from apps import sdd  # the study flags: every one of them may fix a setting or be a grid axis
from keras_sdd import console
from keras_sdd.config import StudyConfig
from keras_sdd.errors import ConfigError

FLAGS = flags.FLAGS
flags.DEFINE_string("grid", None, "Axes of the sweep: 'name=v1,v2;name2=w1,w2' (names are study flags).")
flags.DEFINE_integer("max_parallel", None, "Studies at a time on the embedded local Ray (default: CPU cores / "
                     "--cpus_per_study).", lower_bound=1)
flags.DEFINE_string("ray_address", None, "Join an existing Ray cluster (HOST:PORT of `ray start --head`, or auto) "
                    "instead of starting a local one.")
flags.DEFINE_float("cpus_per_study", 1.0, "CPUs a study reserves (its TensorFlow threads when --threads=0).",
                   lower_bound=0.0)
flags.DEFINE_float("gpus_per_study", 0.0, "GPUs a study reserves (fractions let small models share a GPU).",
                   lower_bound=0.0)
flags.DEFINE_integer("max_retries", 1, "Retries of a study that raises before it is marked failed.", lower_bound=0)

EXIT_FAILED_STUDIES = 3
_FIELDS = {f.name for f in dataclasses.fields(StudyConfig)}
_NOT_AXES = {"logdir", "resume", "resume_from_round"}


def points(grid, root: pathlib.Path):
    """Every point's settings, folder, validated config and flags text; ConfigError naming a bad point."""
    from keras_sdd.config import validate
    from keras_sdd.sweep.engine import Point
    from keras_sdd.sweep.grid import check_names, expand, flag_value, point_name

    for axis in grid:
        if axis not in _FIELDS or axis in _NOT_AXES:
            raise ConfigError(f"--grid: {axis} is not a study setting that can vary (see python -m apps.sdd "
                              "--helpfull)")
    pts = expand(grid)
    check_names(pts)
    out = []
    for settings in pts:
        name = point_name(settings)
        fv = copy.deepcopy(FLAGS)
        args = [f"--{k}={flag_value(v)}" for k, v in settings.items()] + [f"--logdir={root / name}"]
        try:
            fv([sys.argv[0], *args])
            config = validate(sdd.config_from_flags(fv))
        except (flags.Error, ConfigError) as e:
            raise ConfigError(f"grid point {name}: {e}") from None
        if config.study != "sdd":
            raise ConfigError(f"grid point {name}: a sweep runs --study=sdd studies (got {config.study})")
        if not config.threads:
            config = config.replace(threads=max(1, int(FLAGS.cpus_per_study)))
        out.append(Point(settings, name, config.to_dict(), fv.flags_into_string()))
    return out


def main(argv):
    del argv
    console.configure_logging()
    try:
        from keras_sdd.study import directory, paths
        from keras_sdd.sweep import engine
        from keras_sdd.sweep.grid import parse_grid

        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("apps.sweep runs studies on Ray, which is not installed: pip install -e '.[sweep]'") \
                from None
        if FLAGS.grid is None:
            raise ConfigError("--grid is required, e.g. --grid='width=10,20;seed=0,1'")
        grid = parse_grid(FLAGS.grid)
        root = pathlib.Path(FLAGS.logdir).resolve()
        directory.check_location(root)
        if root.exists() and any(root.iterdir()) and not (root / engine.SWEEP_FILE).exists():
            raise ConfigError(f"{root} exists and holds no sweep; choose another --logdir")
        pts = points(grid, root)
        for p in pts:   # an existing point must match its settings and be resumable, before anything starts
            if paths.StudyPaths(p.dir).is_study():
                directory.plan(StudyConfig.from_dict({**p.config, "resume": True}))
        if FLAGS.ray_address:
            engine.check_address(FLAGS.ray_address)
        max_parallel = FLAGS.max_parallel or max(1, int((os.cpu_count() or 1) // max(FLAGS.cpus_per_study, 1)))
        sweep = engine.Sweep(root, grid, pts, log=lambda line: print(line, flush=True))
    except ConfigError as e:
        console.refuse(e)
    print(f"sweep {root}: {len(pts)} studies ({' × '.join(f'{len(v)} {k}' for k, v in grid.items())}), "
          f"{'Ray at ' + FLAGS.ray_address if FLAGS.ray_address else f'{max_parallel} at a time on local Ray'}",
          flush=True)
    failed = sweep.run(max_parallel=max_parallel, address=FLAGS.ray_address, cpus_per_study=FLAGS.cpus_per_study,
                       gpus_per_study=FLAGS.gpus_per_study, max_retries=FLAGS.max_retries)
    if failed:
        print(f"error: {len(failed)} of {len(pts)} studies failed: {', '.join(failed)} (see {root}/sweep.json)",
              file=sys.stderr)
        sys.exit(EXIT_FAILED_STUDIES)
    print(f"sweep done: {len(pts)} studies in {root}; report: python -m apps.report --logdir={root} "
          f"--out={root}_report")


def run():
    app.run(main, flags_parser=console.parse_flags)


if __name__ == "__main__":
    run()
