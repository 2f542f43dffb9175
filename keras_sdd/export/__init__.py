"""Deployable sparse models: a study's round as a TFLite flatbuffer, a SavedModel or a ``.keras`` file, measured
on what the sparsity buys at inference (file size raw and gzip-compressed, accuracy of the exported file, latency
per example) against the dense round 0 exported the same way.

Seed paper 1 (§6) notes that unstructured pruning pays off at deployment only with tooling made for sparse
inference; TensorFlow's own converter (``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``) stores sparse kernels in a
compressed format. One concept per module:

- ``plan``: every check made before any work (study, round, format, ``--out``); no TensorFlow;
- ``selection``: which round (``best_val``, ``best_test`` or ``K``);
- ``deployable``: the round's model without pruning wrappers, taking the study's raw inputs (its normalisation
  built in), what cannot be exported, the int8 calibration examples;
- ``tflite``: conversion (sparsity, dynamic-range and int8 quantization) and the TFLite interpreter;
- ``writer``: atomic writes of each format, refusals naming the layer;
- ``measure``: size, accuracy and latency of an exported file;
- ``table``: the printed comparison;
- ``study_export``: all of it for one study directory (what ``python -m apps.export`` runs).

Names are imported on first use, so ``keras_sdd.export.plan`` stays free of TensorFlow.
"""
_LAZY = {"plan_export": "plan", "ExportPlan": "plan", "FORMATS": "plan", "QUANTIZE": "plan",
         "resolve_round": "selection", "ROUND_CHOICES": "selection",
         "export_study": "study_export", "ExportResult": "study_export"}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_sdd.export' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"keras_sdd.export.{_LAZY[name]}"), name)
