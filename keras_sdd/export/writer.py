"""Writing an export: one file (TFLite flatbuffer, ``.keras``) or one folder (SavedModel), never half of one.

Everything is written under a hidden temporary name in ``--out``'s own folder and moved into place with
``os.replace`` (a file) or ``os.rename`` (a folder) once complete; a failure removes the temporary. An existing
file at ``--out`` is replaced (atomically); an existing folder is never replaced or deleted (``plan.check_out``
refuses both beforehand where it can).
"""
from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil

from keras_sdd.errors import ConfigError
from keras_sdd.export import deployable, tflite
from keras_sdd.export.plan import check_options

__all__ = ["ExportRefused", "export_model", "write_bytes", "write_model"]


@contextlib.contextmanager
def _quiet_tensorflow_warnings():
    """TensorFlow's Python warnings off: a SavedModel save of an uncompiled tf_keras model warns, twice, about
    compiled metrics it has no use for."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tmp_name(out: pathlib.Path, suffix: str = "") -> pathlib.Path:
    return out.with_name(f".{out.name}.tmp-{os.getpid()}{suffix}")


def _remove(path: pathlib.Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def write_bytes(out: pathlib.Path, content: bytes) -> None:
    """``content`` at ``out`` via a synced temporary file and ``os.replace``."""
    tmp = _tmp_name(out)
    try:
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


def write_model(out: pathlib.Path, model, fmt: str, check=None) -> None:
    """``model`` saved as ``fmt`` ('keras' or 'saved_model') at ``out``, complete or not at all. ``check(path)``
    runs on the finished temporary before it is moved into place (e.g. reading it back)."""
    if fmt not in ("keras", "saved_model"):
        raise ValueError(f"write_model writes keras or saved_model, not {fmt}")
    tmp = _tmp_name(out, ".keras" if fmt == "keras" else "")
    try:
        if fmt == "keras":
            model.save(str(tmp), save_format="keras")
            if check is not None:
                check(tmp)
            os.replace(tmp, out)
        else:
            with _quiet_tensorflow_warnings():   # "Compiled the loaded model, but the compiled metrics..."
                model.save(str(tmp), save_format="tf", include_optimizer=False)
            if check is not None:
                check(tmp)
            if out.exists():   # appeared meanwhile: never written over
                raise ConfigError(f"--out={out} appeared while exporting; nothing was written")
            os.rename(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


class ExportRefused(ConfigError):
    """The model cannot be exported in the asked format; the message names the layer when it can."""


def export_model(model, out: pathlib.Path, fmt: str, quantize: str = "none", representative=None) -> None:
    """``model`` exported as ``fmt`` to ``out``, atomically; ExportRefused naming the layer that stops it.

    A ``.keras`` file or SavedModel is read back before it is moved into place: one that cannot be loaded is
    no export."""
    from keras_sdd.export import measure

    check_options(fmt, quantize)
    deployable.check_unwrapped(model)
    if fmt == "keras":
        try:
            deployable.check_serializable(model)
        except ConfigError as e:
            raise ExportRefused(str(e)) from None
    try:
        if fmt == "tflite":
            write_bytes(out, tflite.convert(model, quantize, representative))
        else:
            write_model(out, model, fmt, check=lambda p: measure.runner_for(p, fmt))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001  (converters and savers raise many types; most name a layer or op)
        text = str(e).strip() or type(e).__name__
        scopes = tflite.failing_scopes(text) if fmt == "tflite" else []
        name, cls = deployable.layer_named_in(model, text, scopes)
        where = f"layer '{name}' ({cls}) cannot be exported" if name else "the model cannot be exported"
        reason = tflite.error_line(text) if fmt == "tflite" else text.splitlines()[0].strip()
        raise ExportRefused(f"{where} as {fmt}: {reason[:240]}") from None
