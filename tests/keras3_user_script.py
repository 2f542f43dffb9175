"""A Keras 3 user's own script (plain ``import keras``, ``model.fit``) with keras_sdd.keras3's callbacks added.

Usage: KERAS_BACKEND=tensorflow|jax python keras3_user_script.py OUT_DIR [sequential|functional|subclassed]
Trains a small MLP 4 epochs with global IMP at epochs 1, 2, 3 (steps_per_execution=4, Adam with LR restart, a
user max-norm constraint on one kernel), saves the model as ``OUT_DIR/model.keras`` and prints one JSON line.
"""
import json
import os
import sys

import keras
import numpy as np

from keras_sdd.keras3 import IterativeMagnitudePruning, SparsityLogger, TrainingCostLogger, strip


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.d1 = keras.layers.Dense(32, activation="relu", kernel_constraint=keras.constraints.MaxNorm(0.5))
        self.d2 = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(4)

    def call(self, x):
        return self.out(self.d2(self.d1(x)))


def build(kind):
    if kind == "subclassed":
        model = Subclassed()
        model(np.zeros((1, 20), "float32"))  # builds the sublayers
        return model
    layers = [keras.layers.Dense(32, activation="relu", kernel_constraint=keras.constraints.MaxNorm(0.5)),
              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
    if kind == "sequential":
        return keras.Sequential([keras.Input((20,))] + layers)
    inputs = keras.Input((20,))
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def kernels(model):
    return [np.asarray(layer.kernel) for layer in model.layers if isinstance(layer, keras.layers.Dense)] or \
        [np.asarray(v) for v in model.trainable_weights if len(v.shape) == 2]


def main(out_dir, kind="sequential"):
    keras.utils.set_random_seed(0)
    model = build(kind)
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.9)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  steps_per_execution=4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 20)).astype(np.float32)
    y = rng.integers(0, 4, 256)
    imp = IterativeMagnitudePruning(prune_fraction=0.2, prune_epochs=(1, 2, 3), restart_learning_rate=True,
                                    verbose=0)
    zeros_after_epoch = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            zeros_after_epoch.append([np.flatnonzero(k.reshape(-1) == 0).tolist() for k in kernels(self.model)])

    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0,
                        callbacks=[imp, SparsityLogger(os.path.join(out_dir, "logs")),
                                   TrainingCostLogger(examples_per_epoch=256, input_shape=(20,) if kind == "subclassed" else None), Watch()])
    ks = kernels(model)
    prunable = sum(k.size for k in ks)
    # one global threshold: every surviving |w| >= every pruned weight's |w| at pruning time can't be seen after
    # training, but the per-layer split differs from a uniform one; record it
    path = os.path.join(out_dir, "model.keras")
    strip(model, path)
    first_kernel_norm = float(np.max(np.linalg.norm(ks[0], axis=0)))
    still_zero = all(set(a) <= set(b) for e in range(1, 3) for a, b in zip(zeros_after_epoch[e],
                                                                           zeros_after_epoch[e + 1]))
    print("RESULT " + json.dumps({
        "backend": keras.backend.backend(),
        "history": {str(k): v for k, v in imp.history.items()},
        "logged": [float(v) for v in history.history["sparsity"]],
        "zeros": int(sum(k.size - np.count_nonzero(k) for k in ks)),
        "prunable": int(prunable),
        "per_layer": [float((k == 0).mean()) for k in ks],
        "pruned_stay_zero": bool(still_zero),
        "train_flops": [float(v) for v in history.history["train_flops"]],
        "max_column_norm_first": first_kernel_norm,
        "loss_finite": bool(np.all(np.isfinite(history.history["loss"]))),
        "kernel_sums": [float(np.abs(k).sum()) for k in ks],
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
