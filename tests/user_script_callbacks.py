"""A tfmot user's own training script, with keras_sdd's callbacks added and nothing else of the package.

Usage: python user_script_callbacks.py LOG_DIR. Wraps its model itself with ``prune_low_magnitude``
(ConstantSparsity(0.0, 0), whose default frequency 100 makes tfmot recompute, i.e. reset, the masks at
step 100; this script runs 128 steps), fits 4 epochs pruning at epochs 1, 2, 3, and prints one JSON line.
"""
import json
import sys

import numpy as np
import tensorflow as tf
import tf_keras
import tensorflow_model_optimization as tfmot

from keras_sdd.callbacks import IterativeMagnitudePruning, SparsityLogger


def main(log_dir):
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.layers.Dense(32, activation="relu", input_shape=(20,)),
        tf_keras.layers.Dense(16, activation="relu"),
        tf_keras.layers.Dense(4),
    ])
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.0, begin_step=0))
    schedule = tf_keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=10, decay_rate=0.9)
    pruned.compile(tf_keras.optimizers.Adam(schedule),
                   tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 20)).astype(np.float32)
    y = rng.integers(0, 4, 256)
    imp = IterativeMagnitudePruning(prune_fraction=0.2, prune_epochs=(1, 2, 3), restart_learning_rate=True,
                                    verbose=0)
    history = pruned.fit(x, y, batch_size=8, epochs=4, verbose=0,
                         callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), imp, SparsityLogger(log_dir)])

    kernels_and_masks = [(w.numpy(), m.numpy()) for layer in pruned.layers for w, m, _ in layer.pruning_vars]
    prunable = sum(m.size for _, m in kernels_and_masks)
    print(json.dumps({
        "callback_history": {str(k): v for k, v in imp.history.items()},
        "logged": [float(v) for v in history.history["sparsity"]],
        "final_mask_zeros": int(sum(m.size - np.count_nonzero(m) for _, m in kernels_and_masks)),
        "prunable": int(prunable),
        "masked_weights_all_zero": bool(all(np.all(w[m == 0] == 0) for w, m in kernels_and_masks)),
        "optimizer_iterations": int(pruned.optimizer.iterations.numpy()),
        "steps_per_epoch": 256 // 8,
        "pruning_step": int(pruned.layers[0].pruning_step.numpy()),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
