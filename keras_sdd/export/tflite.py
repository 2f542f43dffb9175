"""TFLite conversion of a deployable model and the interpreter that runs the result.

Every conversion sets ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``: kernels that are mostly zeros are stored in a
compressed sparse format, which is what makes a pruned model's file small. ``quantize``: ``none`` (float32
weights), ``dynamic`` (int8 weights, float activations: ``Optimize.DEFAULT`` without data) or ``int8`` (int8
weights and activations calibrated on a representative dataset, builtin int8 kernels only; inputs and outputs
stay float32 so the file takes the same raw inputs as the others). The interpreter applies TFLite's default
delegate, XNNPACK, where the build has it (``runtime='xnnpack'``), or only the builtin kernels
(``runtime='builtin'``).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_sdd.errors import ConfigError
from keras_sdd.export.plan import QUANTIZE
RUNTIMES = ("xnnpack", "builtin")


class ConversionError(Exception):
    """The converter failed; ``args[0]`` is its message (the caller names the layer)."""


def convert(model, quantize: str = "none", representative: Optional[np.ndarray] = None) -> bytes:
    """The flatbuffer of ``model``; ``representative`` (raw inputs) is required for ``quantize='int8'``."""
    if quantize not in QUANTIZE:
        raise ConfigError(f"--quantize={quantize}: choose one of {', '.join(QUANTIZE)}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if quantize == "int8":
        if representative is None or not len(representative):
            raise ConfigError("int8 quantization needs a representative dataset")
        examples = np.asarray(representative, np.float32)

        def batches():
            for i in range(len(examples)):
                yield [examples[i:i + 1]]
        converter.representative_dataset = batches
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with _native_stderr_captured() as captured, warnings.catch_warnings():
        # int8 with float32 inputs/outputs: the converter warns that it has no input statistics (it needs none)
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        try:
            return converter.convert()
        except Exception as e:  # noqa: BLE001  (the converter raises ConverterError, ValueError, RuntimeError...)
            error = e
    raise ConversionError(f"{error}\n{captured.text}".strip() or type(error).__name__)


class _Captured:
    text = ""


@contextlib.contextmanager
def _native_stderr_captured():
    """File descriptor 2 into a temporary file while the converter runs: its MLIR diagnostics (a page of op
    locations per failure) become part of the error, not console noise; ``.text`` holds them afterwards."""
    captured = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            captured.text = f.read().decode("utf-8", "replace")


#: The op location an MLIR diagnostic names: callsite("model/layer_name/Op@function"...
_LOCATION = re.compile(r'callsite\("([^"@]+)@')
_ERROR = re.compile(r"error: (.+)")


def failing_scopes(message: str):
    """Name scopes of the ops the converter's message blames ('model/odd_svd/Svd' -> ['model', 'odd_svd', ...])."""
    return [part for loc in _LOCATION.findall(message) for part in loc.split("/")]


def error_line(message: str) -> str:
    """The converter's own one-line reason (its first 'error: ...'), else the message's first line."""
    found = _ERROR.search(message)
    if found:
        return found.group(1).strip()
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    return lines[0] if lines else "the converter failed"


def interpreter(content: bytes, batch: int, runtime: str = "xnnpack", threads: int = 1) -> tf.lite.Interpreter:
    """An interpreter for the flatbuffer ``content`` with its input resized to ``batch`` examples, allocated."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime={runtime}: choose one of {', '.join(RUNTIMES)}")
    resolver = (tf.lite.experimental.OpResolverType.AUTO if runtime == "xnnpack"
                else tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    with warnings.catch_warnings():   # "tf.lite.Interpreter is deprecated": ai_edge_litert is not a dependency
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_content=content, num_threads=int(threads),
                                     experimental_op_resolver_type=resolver)
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], [int(batch), *detail["shape"][1:]])
    interp.allocate_tensors()
    return interp


class TFLiteRunner:
    """Runs a flatbuffer on batches of raw inputs: ``runner(x) -> logits`` (float32)."""

    def __init__(self, content: bytes, runtime: str = "xnnpack", threads: int = 1):
        self.content, self.runtime, self.threads = content, runtime, threads
        self._by_batch = {}

    def _for(self, batch: int):
        if batch not in self._by_batch:
            interp = interpreter(self.content, batch, self.runtime, self.threads)
            self._by_batch[batch] = (interp, interp.get_input_details()[0]["index"],
                                     interp.get_output_details()[0]["index"])
        return self._by_batch[batch]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        interp, i, o = self._for(len(x))
        interp.set_tensor(i, np.ascontiguousarray(x, np.float32))
        interp.invoke()
        return interp.get_tensor(o)

    def invoke_fn(self, x: np.ndarray):
        """A no-argument call that runs one batch already in place (for timing without the copy in)."""
        interp, i, _ = self._for(len(x))
        interp.set_tensor(i, np.ascontiguousarray(x, np.float32))
        return interp.invoke
