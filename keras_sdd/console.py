"""What a user sees on the console: only the app's own lines, and one line and exit code 2 for bad input.

TensorFlow prints start-up lines from C++ (``oneDNN custom operations are on``, ``failed call to cuInit`` on a
machine without a GPU, ``Could not find cuda drivers``, absl's ``All log messages before absl::InitializeLog``)
that ignore ``TF_CPP_MIN_LOG_LEVEL`` in TF 2.21, and its Python modules log INFO lines through absl (``Sharding
callback duration`` after every checkpoint write, tensorflow-datasets' progress). An app therefore:

- calls ``quiet_native_logs()`` at its very top, before TensorFlow is imported: C++ log lines (glog format) are
  dropped from the process's standard error, everything else (tracebacks, warnings, our lines) passes;
- runs ``app.run(main, flags_parser=parse_flags)``: a bad flag or a stray argument is one ``error:`` line and
  exit code 2 (``EXIT_BAD_INPUT``), the code of every refusal of bad input, instead of absl's usage text;
- calls ``configure_logging()`` in ``main``: INFO lines of keras_sdd and the apps only, as short ``HH:MM:SS``
  lines; warnings from anywhere as ``warning: ...``.

``--verbosity=0`` (or higher, or ``-v``) brings everything back in absl's own format.
"""
from __future__ import annotations

import atexit
import logging as std_logging
import os
import re
import sys
import threading
from typing import List, Optional

EXIT_BAD_INPUT = 2

#: A C++ (glog/absl) log line: 'I0000 00:00:1795347764.670734   14122 port.cc:153] ...'. Python absl lines of
#: other modules share the format; the app's own lines use the short format and so pass.
_NATIVE = re.compile(r"^[IWE]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [^\s:]+:\d+\] ")
_NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",)
_ROOTS = tuple(os.path.dirname(os.path.abspath(p)) for p in (__file__,)) + (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "apps"),)


def _verbose(argv: Optional[List[str]] = None) -> bool:
    """True when the command line asks for absl's verbosity (then nothing is filtered)."""
    argv = sys.argv[1:] if argv is None else argv
    for arg in argv:
        if arg in ("-v", "--v") or arg.startswith(("--verbosity", "-v=", "--v=")):
            value = arg.split("=", 1)[1] if "=" in arg else "1"
            try:
                return int(value) >= 0 if arg.startswith("--verbosity") else True
            except ValueError:
                return True
    return False


class _StderrFilter:
    """Replaces file descriptor 2 by a pipe whose reader forwards every line but native log lines."""

    def __init__(self):
        self.real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.reader = os.fdopen(read_end, "rb", buffering=0)
        self.thread = threading.Thread(target=self._pump, name="keras_sdd-stderr", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _pump(self):
        pending = b""
        while True:
            chunk = self.reader.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = [line + b"\n" for line in lines if not _drop(line)]
            if out:
                os.write(self.real, b"".join(out))
        if pending and not _drop(pending):
            os.write(self.real, pending)

    def close(self):
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.real, 2)        # closes the pipe's last write end: the reader sees EOF
        self.thread.join(timeout=5)


def _drop(line: bytes) -> bool:
    text = line.decode("utf-8", "replace")
    return bool(_NATIVE.match(text)) or text.strip() in _NOISE


_FILTER: Optional[_StderrFilter] = None


def quiet_native_logs(argv: Optional[List[str]] = None) -> None:
    """Call before TensorFlow is imported: drops TensorFlow's native log lines from standard error (unless the
    command line asks for ``--verbosity``)."""
    global _FILTER  # one filter per process: it owns file descriptor 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _FILTER is None and not _verbose(argv):
        _FILTER = _StderrFilter()


class _Short(std_logging.Formatter):
    def format(self, record):
        text = record.getMessage()
        if record.levelno >= std_logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return f"{self.formatTime(record, '%H:%M:%S')} {text}"


class _OwnInfo(std_logging.Filter):
    """INFO from keras_sdd and the apps only; warnings and errors from anywhere."""

    def filter(self, record):
        return record.levelno >= std_logging.WARNING or os.path.abspath(record.pathname).startswith(_ROOTS)


def configure_logging() -> None:
    """Short progress lines of our own (see the module docstring); absl's format when --verbosity was given."""
    from absl import logging

    for name in ("tensorflow", "tensorflow_datasets", "absl.tensorflow_datasets", "codecarbon"):
        std_logging.getLogger(name).setLevel(std_logging.WARNING)
    if _verbose():
        return
    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    handler.setFormatter(_Short())
    if not any(isinstance(f, _OwnInfo) for f in handler.filters):
        handler.addFilter(_OwnInfo())


def refuse(error) -> None:
    """One line on standard error and the bad-input exit code."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def parse_flags(argv: List[str]) -> List[str]:
    """absl flags parser for ``app.run``: flag errors and stray arguments are one line and exit code 2."""
    from absl import flags

    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        refuse(e)
    if len(rest) > 1:
        refuse(f"unexpected argument(s): {' '.join(rest[1:])} (flags take the form --name=value; see --helpfull)")
    return rest
