"""keras_sdd for Keras 3 (``import keras``; TensorFlow, JAX backends): IMP callbacks, distillation, FLOPs.

The same class names and arguments as the tf_keras path (``keras_sdd.callbacks``, ``keras_sdd.distillation``), so
a Keras 3 user changes only the import. No wrapper layers: a pruned kernel keeps its layer and gets a mask
through its variable's constraint (``kernel_masks``). Imports neither tf_keras nor tfmot and leaves ``tf.keras``
alone; the mask selection is the shared numpy code of ``keras_sdd.pruning.masks``.
"""
import keras as _keras

if not str(_keras.__version__).startswith("3"):
    raise ImportError(f"keras_sdd.keras3 needs Keras 3 (`import keras` gives {_keras.__version__}); on Keras 2 use "
                      "keras_sdd.callbacks and keras_sdd.distillation")

from keras_sdd.keras3.calibration import CalibrationLogger  # noqa: E402
from keras_sdd.keras3.cost import TrainingCostLogger  # noqa: E402
from keras_sdd.keras3.distillation import DistillationModel, distillation_losses, teacher_logits  # noqa: E402
from keras_sdd.keras3.pruning import IterativeMagnitudePruning  # noqa: E402
from keras_sdd.keras3.rewind import RewindCapture, restore, snapshot  # noqa: E402
from keras_sdd.keras3.sparsity import SparsityLogger  # noqa: E402
from keras_sdd.keras3.strip import strip  # noqa: E402
from keras_sdd.pruning.scope import PruneScope  # noqa: E402

__all__ = ["CalibrationLogger", "DistillationModel", "IterativeMagnitudePruning", "PruneScope", "RewindCapture",
           "SparsityLogger", "TrainingCostLogger", "distillation_losses", "restore", "snapshot", "strip",
           "teacher_logits"]
