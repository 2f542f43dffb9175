"""The simplest fast TensorFlow IMP loop for the quickstart task: the yardstick of ``benchmarks.study_time``.

Same data (the quickstart's Gaussian mixture, noise and splits, from ``keras_sdd.data``), same model (the zoo's
FCN), same policy (Adam 1e-3, cosine over each round, batch 128, 25 epochs a round), same 28 rounds of global
magnitude pruning with learning-rate rewinding, and the same per-round evaluations (train accuracy against the
noisy and the clean labels, validation, test) — but as bare TensorFlow: the whole epoch is one ``tf.function``
(a ``tf.range`` loop over the batches), the masks are multiplied into the kernels after every step, the global
threshold is computed between rounds with numpy, and nothing is written. ``python -m benchmarks.reference_imp``
prints the per-round test accuracy and the wall time.
"""
from __future__ import annotations

import math
import sys
import time

T0 = time.perf_counter()

import keras_sdd.legacy_keras  # noqa: E402,F401  (Keras 2)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from keras_sdd import data, models  # noqa: E402
from keras_sdd.pruning.masks import global_magnitude_masks, round_targets  # noqa: E402

EPOCHS, BATCH, LR = 25, 128, 1e-3


def main() -> None:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    b = data.load("gaussian_mixture", seed=0, noise_type="symmetric", noise_rate=0.2, val_fraction=0.1,
                  task="linear", dim=100, bayes_accuracy=0.9, train_size=10000, test_size=5000)
    norm = lambda x: b.normalize(tf.constant(x))  # noqa: E731
    x_tr, y_tr = norm(b.train.x), tf.constant(b.train.y)
    splits = {"train_noisy": (x_tr, b.train.y), "train_clean": (x_tr, b.train.y_clean),
              "val": (norm(b.val.x), b.val.y), "test": (norm(b.test.x), b.test.y_clean)}
    model = models.build("fcn", (100,), 2, width=500, depth=1, seed=0)
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, tf_keras.layers.Dense)]
    masks = [tf.Variable(tf.ones_like(k), trainable=False) for k in kernels]
    n = int(x_tr.shape[0])
    steps = math.ceil(n / BATCH)
    step = tf.Variable(0, dtype=tf.int64)
    total = float(steps * EPOCHS)
    schedule = lambda: 0.5 * LR * (1 + tf.cos(math.pi * tf.minimum(tf.cast(step, tf.float32) / total, 1.0)))  # noqa
    opt = tf_keras.optimizers.Adam(learning_rate=schedule)
    opt.build(model.trainable_variables)
    loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def epoch(seed):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=seed)
        for i in tf.range(steps):
            idx = order[i * BATCH: tf.minimum((i + 1) * BATCH, n)]
            xb, yb = tf.gather(x_tr, idx), tf.gather(y_tr, idx)
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            for k, m in zip(kernels, masks):
                k.assign(k * m)
            step.assign_add(1)

    @tf.function
    def logits(x):
        return model(x, training=False)

    def reset_optimizer():
        step.assign(0)
        opt.iterations.assign(0)
        for v in opt.variables:
            if v is not opt.iterations:
                v.assign(tf.zeros_like(v))

    targets = [0.0] + round_targets(0.2, 0.998)
    for k, target in enumerate(targets):
        if k:
            weights = {str(i): kern.numpy() for i, kern in enumerate(kernels)}
            current = {str(i): m.numpy() for i, m in enumerate(masks)}
            new = global_magnitude_masks(weights, current, target)
            for i, (kern, m) in enumerate(zip(kernels, masks)):
                m.assign(new[str(i)])
                kern.assign(kern * new[str(i)])
            reset_optimizer()
        for e in range(EPOCHS):
            epoch(tf.constant([k, e], tf.int64))
        acc = {name: float(np.mean(np.argmax(logits(x).numpy(), 1) == y)) for name, (x, y) in splits.items()}
        print(f"round {k:2d} sparsity {target:.4f} test {100 * acc['test']:.1f}%", file=sys.stderr)
    print(f"reference IMP loop: {time.perf_counter() - T0:.2f} s wall", flush=True)


if __name__ == "__main__":
    main()
