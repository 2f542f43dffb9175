"""Turns study directories into findings: ``python -m apps.report --logdir=DIR [--logdir=DIR ...] --out=REPORT``.

``--logdir`` may repeat and may hold globs; each names a study, an ℓ2 group or a sweep (every study below it is
read). Writes ``tables.md`` (seed 1 Tables 1–2 and seed 2 Table 1 forms), ``analysis.json`` (every number),
``figures/*.png``, and ``tensorboard/`` (the figures as images, each study's settings and results as HParams:
``tensorboard --logdir REPORT/tensorboard``). Studies are only read.
"""
from __future__ import annotations

import glob
import pathlib
import sys

from absl import app, flags

from keras_sdd import console

console.quiet_native_logs()

import keras_sdd.legacy_keras  # noqa: E402,F401  (pins Keras 2 before TensorFlow loads)
from keras_sdd.errors import ConfigError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("logdir", [], "Study, ℓ2-group or sweep directory (repeatable; globs allowed).")
flags.DEFINE_string("out", "report", "Report folder (created; a previous report there is replaced).")
flags.DEFINE_integer("early_stop_patience", 2, "Traditional early stopping: rounds in a row below the best.",
                     lower_bound=1)
flags.DEFINE_float("early_stop_tolerance", 0.01, "Traditional early stopping: how far below the best validation "
                   "accuracy (0..1) counts as a fall.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("deployment", False, "Also export each study's validation-chosen round as a sparse TFLite file "
                  "into the report's deployment/ folder and add a table of size and latency ratios vs the dense "
                  "round and the accuracy the file keeps (python -m apps.export for one study).")
flags.DEFINE_float("sdd_margin", 0.01, "Minimum dip and rise (accuracy, 0..1) for a curve to count as SDD.",
                   lower_bound=0.0, upper_bound=1.0)


def roots(patterns) -> list:
    """The directories named by the --logdir values (globs expanded); ConfigError for one that matches none."""
    out = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        dirs = [pathlib.Path(m) for m in matches if pathlib.Path(m).is_dir()]
        if not dirs:
            raise ConfigError(f"--logdir={pattern}: no such directory")
        out += dirs
    return out


def main(argv):
    del argv
    console.configure_logging()
    try:
        if not FLAGS.logdir:
            raise ConfigError("give at least one --logdir (a study, an ℓ2 group or a sweep directory)")
        from keras_sdd.analysis import report
        from keras_sdd.study import recount

        out = pathlib.Path(FLAGS.out)
        report.check_out(out)
        analysis = report.build(roots(FLAGS.logdir), out, patience=FLAGS.early_stop_patience,
                                tolerance=FLAGS.early_stop_tolerance, sdd_margin=FLAGS.sdd_margin,
                                recount=recount.missing_counts, deployment=FLAGS.deployment)
    except ConfigError as e:
        console.refuse(e)
    print(f"report of {len(analysis['studies'])} studies in {len(analysis['groups'])} groups written to {out}: "
          f"tables.md, analysis.json, {len(analysis['figures'])} figures; TensorBoard: tensorboard --logdir "
          f"{out}/tensorboard")


def run():
    app.run(main, flags_parser=console.parse_flags)


if __name__ == "__main__":
    run()
