"""Runs a tiny study on one device, then under MirroredStrategy on two logical CPUs, then the mirrored study again
killed in round 1 and resumed; prints one JSON line with the three studies' rows. Used by tests/test_distribute.py
(TensorFlow's logical devices must be set before anything else touches it, hence a process of its own)."""
import json
import pathlib
import sys

import keras_sdd  # noqa: F401
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from keras_sdd.config import StudyConfig  # noqa: E402
from keras_sdd.study import runner  # noqa: E402
from keras_sdd.study.records import read_rounds  # noqa: E402

root = pathlib.Path(sys.argv[1])
base = StudyConfig(dataset="gaussian_mixture", gmm_dim=10, gmm_train_size=400, gmm_test_size=300, noise_rate=0.2,
                   model="fcn", width=16, depth=1, epochs=3, batch_size=64, optimizer="adam", learning_rate=0.01,
                   lr_schedule="cosine", prune_fraction=0.5, max_rounds=2, checkpoint_every_secs=0.0,
                   track_energy=False)
runner.run_study(base.replace(logdir=str(root / "single")))
runner.run_study(base.replace(logdir=str(root / "mirrored"), strategy="mirrored"))


class Kill(Exception):
    pass


original = runner._EpochCheckpoint.on_epoch_end


def killing(self, epoch, logs=None):
    original(self, epoch, logs)
    if self.round_index == 1 and epoch == 0:
        raise Kill()


runner._EpochCheckpoint.on_epoch_end = killing
cut = base.replace(logdir=str(root / "resumed"), strategy="mirrored")
try:
    runner.run_study(cut)
except Kill:
    pass
runner._EpochCheckpoint.on_epoch_end = original
interrupted = len(read_rounds(root / "resumed"))
runner.run_study(cut.replace(resume=True))
from keras_sdd import process  # noqa: E402

print(json.dumps({"replicas": process.make_strategy("mirrored").num_replicas_in_sync, "interrupted": interrupted,
                  **{name: read_rounds(root / name) for name in ("single", "mirrored", "resumed")}}))
