"""Pruning masks on Keras 3 kernels: a non-trainable mask variable applied by the kernel variable's constraint.

Keras 3 has no pruning API and tfmot's wrappers are Keras 2 only. Here a pruned kernel keeps its plain layer;
its *variable*'s ``constraint`` becomes a ``KernelMask`` (``w -> inner(w) * mask``, chaining any constraint the
variable already had). Every optimizer applies variable constraints right after its update, inside the compiled
step, so pruned weights are exactly 0 after every step (also with ``steps_per_execution``) at about the dense
step's cost. The layer's config (``kernel_constraint``) is untouched, so a saved ``.keras`` file holds plain
layers and their zeros and loads anywhere without keras_sdd; ``ensure_masks`` rebuilds masks from the exact zeros
of a loaded model.

Under JAX the compiled step captures the mask values when it is traced: after masks change, the train function is
rebuilt (``refresh_train_function``), or the old masks keep being applied.

Kernels are keyed by their variable's ``path`` (``'dense_1/kernel'``, ``'mha/query/kernel'``...). Which kernels
are prunable: Dense, EinsumDense (hence MultiHeadAttention's four projections), Conv1D/2D/3D and their transposed
forms, DepthwiseConv1D/2D (its depthwise kernel), SeparableConv1D/2D (both kernels), found in any Sequential,
functional or subclassed model, nested models included.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Mapping, Optional, Tuple

import keras
import numpy as np
from keras import ops

from keras_sdd.errors import ConfigError
from keras_sdd.keras_line import require_keras3_model
from keras_sdd.pruning.scope import OUTPUT_LAYER_NAME, PruneScope

L = keras.layers
_DENSE = (L.Dense, L.EinsumDense)
_CONV = (L.Conv1D, L.Conv2D, L.Conv3D, L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose,
         L.DepthwiseConv1D, L.DepthwiseConv2D, L.SeparableConv1D, L.SeparableConv2D)
#: Attributes that hold a layer's prunable kernel variables (``_kernel`` behind Dense's LoRA-aware property).
_KERNEL_ATTRS = ("_kernel", "kernel", "depthwise_kernel", "pointwise_kernel")


class KernelMask(keras.constraints.Constraint):
    """``w -> inner(w) * mask``: the constraint a pruned kernel variable carries. ``mask`` is a non-trainable
    ``keras.Variable`` of the kernel's shape and dtype (1 keeps, 0 prunes), owned by no layer, so it is neither
    saved with the model nor counted in its weights; ``inner`` is the variable's previous constraint (or None)."""

    def __init__(self, mask: keras.Variable, inner=None):
        self.mask, self.inner = mask, inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return w * ops.cast(self.mask, w.dtype)

    def get_config(self):  # layers save their kernel_constraint, not this: a saved model never holds a KernelMask
        return {"inner": None if self.inner is None else keras.constraints.serialize(self.inner)}


def _layers(model) -> Iterator[keras.layers.Layer]:
    # pylint: disable=protected-access
    yield from model._flatten_layers(include_self=False, recursive=True)


def _kernels_of(layer) -> List[keras.Variable]:
    out = []
    for attr in _KERNEL_ATTRS:
        v = layer.__dict__.get(attr) if attr == "_kernel" else getattr(layer, attr, None)
        if isinstance(v, keras.Variable) and all(v is not o for o in out):
            out.append(v)
    return out


def prune_root(model):
    """The model whose kernels are pruned: a ``DistillationModel``'s student, else the model itself."""
    from keras_sdd.keras3.distillation import DistillationModel  # pylint: disable=import-outside-toplevel

    return model.student if isinstance(model, DistillationModel) else model


def prunable_kernels(model, scope: Optional[PruneScope] = None, *, who: str = "keras_sdd.keras3") \
        -> Dict[str, keras.Variable]:
    """{variable path: kernel variable} of the prunable layers of ``model`` (a ``DistillationModel``: of its
    student), in layer order, restricted by ``scope`` (``only_dense``: Dense/EinsumDense only;
    ``keep_output_dense``: not the Dense layer named 'logits', else the last Dense). The model must be built."""
    require_keras3_model(model, who)
    root = prune_root(model)
    scope = scope or PruneScope()
    layers = [layer for layer in _layers(root) if isinstance(layer, _DENSE + _CONV)]
    if scope.keep_output_dense:
        dense = [layer for layer in layers if isinstance(layer, L.Dense)]
        named = [layer for layer in dense if layer.name == OUTPUT_LAYER_NAME]
        output = named[0] if named else (dense[-1] if dense else None)
        layers = [layer for layer in layers if layer is not output]
    if scope.only_dense:
        layers = [layer for layer in layers if isinstance(layer, _DENSE)]
    out: Dict[str, keras.Variable] = {}
    seen = set()
    for layer in layers:
        if not layer.built:
            raise ConfigError(f"{who}: layer {layer.name!r} is not built; build the model (give it an input shape "
                              "or call it once) before pruning")
        for v in _kernels_of(layer):
            if id(v) in seen:
                continue
            seen.add(id(v))
            key, n = v.path, 1
            while key in out:
                n += 1
                key = f"{v.path}#{n}"
            out[key] = v
    return out


def mask_of(kernel: keras.Variable) -> Optional[KernelMask]:
    """The kernel's ``KernelMask``, or None when it carries none."""
    return kernel.constraint if isinstance(kernel.constraint, KernelMask) else None


def ensure_masks(kernels: Mapping[str, keras.Variable]) -> None:
    """Gives every kernel without one a ``KernelMask`` whose mask is the kernel's non-zero pattern (all ones for a
    freshly initialised kernel; a loaded pruned model gets its masks back from its exact zeros), chaining the
    variable's own constraint."""
    for kernel in kernels.values():
        if mask_of(kernel) is None:
            mask = keras.Variable(
                (ops.convert_to_numpy(kernel) != 0).astype(kernel.dtype), trainable=False, dtype=kernel.dtype,
                name=kernel.name + "_mask")
            kernel.constraint = KernelMask(mask, kernel.constraint)


def get_masks(kernels: Mapping[str, keras.Variable]) -> Dict[str, np.ndarray]:
    """{key: float32 0/1 mask}: the ``KernelMask`` of each kernel, or its non-zero pattern when it has none."""
    out = {}
    for key, kernel in kernels.items():
        m = mask_of(kernel)
        out[key] = (ops.convert_to_numpy(m.mask if m is not None else kernel) != 0).astype(np.float32)
    return out


def get_weights(kernels: Mapping[str, keras.Variable]) -> Dict[str, np.ndarray]:
    """{key: kernel values as numpy}."""
    return {key: ops.convert_to_numpy(kernel) for key, kernel in kernels.items()}


def assign_masks(kernels: Mapping[str, keras.Variable], masks: Mapping[str, np.ndarray]) -> None:
    """Sets each kernel's mask (creating its ``KernelMask`` if needed) and zeroes its pruned weights at once."""
    ensure_masks(kernels)
    for key, mask in masks.items():
        kernel = kernels[key]
        if tuple(np.shape(mask)) != tuple(kernel.shape):
            raise ConfigError(f"mask for {key} has shape {np.shape(mask)}, the kernel {tuple(kernel.shape)}")
        mask_of(kernel).mask.assign(np.asarray(mask, dtype=kernel.dtype))
    apply_masks(kernels)


def apply_masks(kernels: Mapping[str, keras.Variable]) -> None:
    """``kernel *= mask`` for every masked kernel (e.g. after restoring weights from a snapshot)."""
    for kernel in kernels.values():
        m = mask_of(kernel)
        if m is not None:
            kernel.assign(kernel * ops.cast(m.mask, kernel.dtype))


def remove_masks(kernels: Mapping[str, keras.Variable]) -> None:
    """Applies the masks one last time and gives each kernel back the constraint it had before."""
    apply_masks(kernels)
    for kernel in kernels.values():
        m = mask_of(kernel)
        if m is not None:
            kernel.constraint = m.inner


def kernel_sparsity(model, scope: Optional[PruneScope] = None, *, who: str = "SparsityLogger") \
        -> Tuple[float, Dict[str, float]]:
    """(global sparsity, {key: sparsity}) of the prunable kernels: their masks where they carry ``KernelMask``s
    (the weights pruned; a constraint such as NonNeg may zero more), else their exact zeros (a model pruned
    elsewhere or loaded from a file). Refuses (ConfigError) a model with no prunable kernel rather than
    reporting 0 %."""
    from keras_sdd.pruning.masks import sparsity  # the shared numpy code

    kernels = prunable_kernels(model, scope, who=who)
    if not kernels:
        raise ConfigError(f"{who}: the model has no prunable kernels (Dense, EinsumDense, Conv) in scope {scope}; "
                          "there is no sparsity to report")
    return sparsity(get_masks(kernels))


def refresh_train_function(model) -> None:
    """Rebuilds a compiled train function that captured mask values (JAX; any backend but TensorFlow, whose
    compiled step reads the mask variables live)."""
    if keras.backend.backend() != "tensorflow" and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
