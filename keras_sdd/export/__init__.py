"""Deployable sparse models: a study's round as a TFLite flatbuffer, a SavedModel or a ``.keras`` file, measured
on what the sparsity buys at inference (file size raw and gzip-compressed, accuracy of the exported file, latency
per example) against the dense round 0 exported the same way.

Seed paper 1 (§6) notes that unstructured pruning pays off at deployment only with tooling made for sparse
inference; TensorFlow's own converter (``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``) stores sparse kernels in a
compressed format. One concept per module:

- ``selection``: which round (``best_val``, ``best_test`` or ``K``);
- ``deployable``: the round's model without pruning wrappers, taking the study's raw inputs (its normalisation
  built in), and the study's data;
- ``tflite``: conversion (sparsity, dynamic-range and int8 quantization) and the TFLite interpreter;
- ``writer``: atomic writes of each format, and the checks of ``--out`` made before any work;
- ``measure``: size, accuracy and latency of an exported file;
- ``table``: the printed comparison;
- ``study_export``: all of it for one study directory (what ``python -m apps.export`` runs).
"""
from keras_sdd.export.selection import ROUND_CHOICES, resolve_round
from keras_sdd.export.study_export import ExportResult, export_study, plan_export
from keras_sdd.export.writer import FORMATS, QUANTIZE

__all__ = ["ROUND_CHOICES", "resolve_round", "ExportResult", "export_study", "plan_export", "FORMATS", "QUANTIZE"]
