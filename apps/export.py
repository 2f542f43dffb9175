"""Exports a study's round as a deployable file and measures what its sparsity buys:
``python -m apps.export --study_dir=DIR [--round=best_val|best_test|K] --format=tflite|saved_model|keras
[--quantize=none|dynamic|int8] --out=PATH``.

The round's model is rebuilt from the study (pruning wrappers stripped), given the study's input normalisation
(the file takes the data as stored: pixel values or raw features, float32) and written atomically to ``--out``.
Round 0 (dense) is exported the same way into a temporary folder, and one table compares them: sparsity,
parameters kept, file size raw and gzip-compressed, test accuracy of the file (TFLite: through the interpreter;
Keras and SavedModel: loaded back) against the accuracy the study recorded, and latency per example at batch 1
and 128 (median of repeated runs). The study directory is only read. Bad input: one ``error:`` line, exit 2,
nothing written.
"""
from __future__ import annotations

from absl import app, flags

from keras_sdd import console

console.quiet_native_logs()

import keras_sdd.legacy_keras  # noqa: E402,F401  (pins Keras 2 before TensorFlow loads)
from keras_sdd.errors import ConfigError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("study_dir", None, "Study directory to export from (only read).")
flags.DEFINE_string("round", "best_val", "best_val (highest validation accuracy), best_test (highest test "
                    "accuracy) or a round number K.")
flags.DEFINE_enum("format", "tflite", ["tflite", "saved_model", "keras"], "Export format.")
flags.DEFINE_enum("quantize", "none", ["none", "dynamic", "int8"], "TFLite quantization: none (float32), dynamic "
                  "(int8 weights), int8 (int8 weights and activations, calibrated on training examples drawn "
                  "with the study's seed).")
flags.DEFINE_string("out", None, "File to write (*.tflite, *.keras) or SavedModel folder (must not exist).")
flags.DEFINE_bool("latency", True, "Measure latency per example at batch 1 and 128.")
flags.DEFINE_integer("repeats", 15, "Timed runs per latency (the median is reported).", lower_bound=1)
flags.DEFINE_integer("threads", 1, "Threads of the TFLite interpreter.", lower_bound=1)
flags.DEFINE_enum("runtime", "xnnpack", ["xnnpack", "builtin"], "TFLite kernels: xnnpack (TFLite's default "
                  "delegate, where available) or builtin (the interpreter's own kernels only).")
flags.DEFINE_integer("representative_size", 256, "int8: training examples to calibrate on.", lower_bound=1)


def main(argv):
    del argv
    console.configure_logging()
    try:
        if not FLAGS.study_dir:
            raise ConfigError("give --study_dir (the study to export from)")
        if not FLAGS.out:
            raise ConfigError("give --out (the file or SavedModel folder to write)")
        from keras_sdd.export import plan as plan_lib

        plan = plan_lib.plan_export(FLAGS.study_dir, FLAGS.round, FLAGS.format, FLAGS.quantize, FLAGS.out)
        from keras_sdd.export import study_export, table   # TensorFlow loads only once the input is known good

        result = study_export.export_study(plan, latency=FLAGS.latency, repeats=FLAGS.repeats,
                                           threads=FLAGS.threads, runtime=FLAGS.runtime,
                                           representative_size=FLAGS.representative_size)
    except ConfigError as e:
        console.refuse(e)
    print(table.markdown(result))
    print(f"wrote {result.out}")


def run():
    app.run(main, flags_parser=console.parse_flags)


if __name__ == "__main__":
    run()
