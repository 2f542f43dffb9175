"""Cost of distillation per training step, measured in one run: ``python -m benchmarks.kd_step``.

For LeNet-300-100 on MNIST-shaped inputs (28×28×1; teacher: a 600-200 FCN) and a small VGG-like (δ=3, γ=4 on
32×32×3; teacher: a VGG-like twice as wide, γ=5), random data, batch 128, steps_per_execution 10, students 50 %
pruned with keras_sdd's fixed masks, it times in the same process, interleaved:
- ``student``: the plain pruned student's step (cross-entropy);
- ``KD cached``: ``DistillationModel`` with the teacher's logits carried in the dataset (what a study does when
  the pipeline has no random augmentation): target ≤ 1.10 × student;
- ``KD uncached``: the teacher runs on every batch (augmented pipelines).
Best step time over the repeats (interference only ever adds time; the ratio column divides best by best) and the
median beside it.
"""
from __future__ import annotations

import argparse
import os

from keras_sdd import console

console.quiet_native_logs()  # TensorFlow's native start-up lines would bury the table

import keras_sdd.legacy_keras  # noqa: E402,F401  (Keras 2 for tfmot)

import numpy as np
import tensorflow as tf
import tf_keras

from benchmarks.step_time import _fit
from keras_sdd import models
from keras_sdd.distillation import DistillationModel, teacher_logits
from keras_sdd.pruning import tfmot_bridge


def _data(shape, classes, batch, teacher):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * 8, *shape)).astype("float32")
    y = rng.integers(0, classes, batch * 8)
    t = teacher_logits(teacher, x)
    plain = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).cache().repeat()
    cached = tf.data.Dataset.from_tensor_slices((x, (y, t))).batch(batch, drop_remainder=True).cache().repeat()
    return plain, cached


def _student(name, shape, classes, **kw):
    m = tfmot_bridge.wrap(models.build(name, shape, classes, seed=0, **kw))
    tfmot_bridge.prune(m, 0.5)
    return m


def measure(name, shape, classes, batch, steps, repeats, spe, student_kw, teacher_spec):
    teacher = models.build(teacher_spec[0], shape, classes, seed=1, **teacher_spec[1])
    plain_ds, cached_ds = _data(shape, classes, batch, teacher)
    opt = lambda: tf_keras.optimizers.SGD(0.01, momentum=0.9)  # noqa: E731
    student = _student(name, shape, classes, **student_kw)
    student.compile(opt(), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                    steps_per_execution=spe)
    kd = {}
    for label in ("KD cached", "KD uncached"):
        m = DistillationModel(_student(name, shape, classes, **student_kw), teacher)
        m.compile(opt(), metrics=["accuracy"], steps_per_execution=spe)
        kd[label] = m
    runs = {"student": (student, plain_ds), "KD cached": (kd["KD cached"], cached_ds),
            "KD uncached": (kd["KD uncached"], plain_ds)}
    for m, ds in runs.values():
        _fit(m, [], ds, spe)                                 # trace and warm up
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, (m, ds) in runs.items():
            times[k].append(_fit(m, [], ds, steps) / steps)
    return {k: (min(v), float(np.median(v))) for k, v in times.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps_per_execution", type=int, default=10)
    a = p.parse_args()
    cases = [("lenet300_100", (28, 28, 1), 10, a.steps, {}, ("fcn", dict(hidden=[600, 200]))),
             ("vgg_like", (32, 32, 3), 10, max(a.steps_per_execution, a.steps // 20), dict(depth=3, width=4),
              ("vgg_like", dict(depth=3, width=5)))]
    print(f"batch {a.batch}, steps_per_execution {a.steps_per_execution}, {a.repeats} interleaved repeats, "
          f"{os.cpu_count()} CPU cores, TF {tf.__version__}", flush=True)
    print(f"{'model':<14}{'variant':<13}{'best step ms':>14}{'median ms':>11}{'vs student':>12}", flush=True)
    for name, shape, classes, steps, skw, tkw in cases:
        res = measure(name, shape, classes, a.batch, steps, a.repeats, a.steps_per_execution, skw, tkw)
        for k, (best, median) in res.items():
            print(f"{name:<14}{k:<13}{1000 * best:>14.3f}{1000 * median:>11.3f}{best / res['student'][0]:>12.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
