"""The comparison an export prints: the exported round against the dense round 0 exported the same way."""
from __future__ import annotations

from typing import List, Optional

from keras_sdd.export.study_export import ExportResult


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _int(v: Optional[int]) -> str:
    return "n/a" if v is None else f"{v:,}"


def _us(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{1e6 * v:.2f}"


def _ratio(v: Optional[float]) -> str:
    return "" if v is None else f"{v:.3f}"


def _diff(a: Optional[float], b: Optional[float]) -> str:
    return "" if a is None or b is None else f"{100 * (a - b):+.2f} pt"


def rows(result: ExportResult) -> List[List[str]]:
    """[what, exported, dense, exported/dense] rows of the comparison."""
    e, d = result.exported, result.dense
    out = [
        ["sparsity (recorded)", _pct(e.sparsity), _pct(d.sparsity), ""],
        ["parameters kept (recorded)", _int(e.remaining_params), _int(d.remaining_params),
         _ratio(e.remaining_params / d.remaining_params if e.remaining_params and d.remaining_params else None)],
        ["non-zero kernel weights (recorded; effective params)", _int(e.kernel_weights), _int(d.kernel_weights),
         _ratio(e.kernel_weights / d.kernel_weights if e.kernel_weights and d.kernel_weights else None)],
        ["non-zero entries in the file's model (biases included)", _int(e.nonzero_entries), _int(d.nonzero_entries),
         _ratio(result.ratio("nonzero_entries"))],
        ["file size (bytes)", _int(e.size_bytes), _int(d.size_bytes), _ratio(result.ratio("size_bytes"))],
        ["gzip size (bytes)", _int(e.gzip_bytes), _int(d.gzip_bytes), _ratio(result.ratio("gzip_bytes"))],
        ["test accuracy of the file", _pct(e.test_accuracy), _pct(d.test_accuracy), ""],
        ["test accuracy recorded by the study", _pct(e.recorded_test_accuracy), _pct(d.recorded_test_accuracy), ""],
        ["file − recorded", _diff(e.test_accuracy, e.recorded_test_accuracy),
         _diff(d.test_accuracy, d.recorded_test_accuracy), ""],
    ]
    if e.other_runtime_accuracy is not None:
        other = "builtin kernels" if result.runtime == "xnnpack" else "XNNPACK"
        out.append([f"test accuracy of the file, {other}", _pct(e.other_runtime_accuracy),
                    _pct(d.other_runtime_accuracy), ""])
    for b in sorted(set(e.latency_s) | set(d.latency_s)):
        out.append([f"latency, batch {b} (µs per example)", _us(e.latency_s.get(b)), _us(d.latency_s.get(b)),
                    _ratio(result.ratio("latency_s", b))])
    return out


def markdown(result: ExportResult) -> str:
    """The comparison as a markdown table, with a title line naming the export."""
    runtime = {"xnnpack": "TFLite interpreter, XNNPACK delegate where available",
               "builtin": "TFLite interpreter, builtin kernels only"}.get(result.runtime,
                                                                          "TensorFlow, file loaded back")
    title = (f"{result.fmt} export of round {result.exported.round} (quantize: {result.quantize}) vs the dense "
             f"round 0 exported the same way; latency: {runtime}, median of repeated runs")
    lines = [title, "", f"| | round {result.exported.round} | dense (round 0) | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {' | '.join(r)} |" for r in rows(result)]
    lines += [""] + [f"warning: {w}" for w in result.warnings] if result.warnings else []
    return "\n".join(lines) + "\n"
