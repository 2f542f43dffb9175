"""What a user sees on the console: only the app's own lines, and one line and exit code 2 for bad input.

Where the noise comes from (TensorFlow 2.21, CPU-only machine) and what silences it:

- TensorFlow's C++ start-up lines (``oneDNN custom operations are on``, ``Could not find cuda drivers``, absl's
  ``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR``), printed twice
  because two of TF's shared libraries each carry their own copy of absl logging, and ``failed call to cuInit:
  ... UNKNOWN ERROR (303)`` when the CUDA build finds no GPU. They are written to file descriptor 2 by C++ absl
  logging *before* ``absl::InitializeLog``, which ignores ``TF_CPP_MIN_LOG_LEVEL`` (only ``=3`` hides the
  ``E`` cuInit line), ``TF_CPP_MAX_VLOG_LEVEL``, ``ABSL_MIN_LOG_LEVEL`` and ``GLOG_minloglevel``;
  ``CUDA_VISIBLE_DEVICES=-1`` does not stop the cuda-driver probe either. So ``quiet_native_logs()`` (call it
  before TensorFlow is imported) points file descriptor 2 at a pipe read by a small filter process that drops
  C++ log lines (``I/W/E0000 00:00:... file.cc:N] ...``) and passes everything else (``F`` fatal lines, crash
  reports). Python's own ``sys.stderr`` is re-opened on the real standard error, so Python lines (logging,
  warnings, tracebacks) stay synchronous and in order with standard output. The filter is a separate process
  so that what C++ writes just before an abort still comes out.
- Python INFO lines through absl: ``Sharding callback duration`` (tensorflow's ``functional_saver.py``, after
  every ``tf.train.Checkpoint`` write), tensorflow-datasets' ``Load dataset info`` / ``Constructing
  tf.data.Dataset`` lines, matplotlib's font lookups, and absl's prefix (``I1122 13:30:20.336381 1401607 file.py:
  N]``) on every line: ``configure_logging()`` gives absl's handler a short format and lets INFO through only
  from keras_sdd, the apps and the ``__main__`` script; warnings from anywhere show as ``warning: ...``
  (Python ``warnings`` included, one line each).

``--verbosity=0`` (or higher; ``-v``), on the command line or in a flagfile, brings everything back in absl's
own format. Apps:

- call ``quiet_native_logs()`` at their very top, before ``import keras_sdd``/TensorFlow;
- run ``app.run(main, flags_parser=parse_flags)``: a bad flag or a stray argument is one ``error:`` line and
  exit code 2 (``EXIT_BAD_INPUT``, the code of every refusal of bad input) instead of absl's usage text;
  ``--help``/``--helpfull`` print absl's help and exit 0;
- call ``configure_logging()`` first thing in ``main``, and ``refuse(error)`` for a ConfigError.
"""
from __future__ import annotations

import atexit
import logging as std_logging
import os
import re
import subprocess
import sys
import warnings
from typing import List, Optional, Sequence

#: Exit code of every refusal of bad input (flags, config, data).
EXIT_BAD_INPUT = 2

#: A C++ (absl/glog) log line: 'I0000 00:00:1795347764.670734   14122 port.cc:153] ...' (I, W, E; F passes).
_NATIVE = rb"^[IWE]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [^\s:\]]+:\d+\] "
#: Other native lines: absl's pre-initialisation notice; the continuation line of cpu_feature_guard's message;
#: TFLite's note that it applied XNNPACK.
_NOISE = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
          b"To enable the following instructions: ",
          b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")   # once per TFLite interpreter

#: The filter process: stdin is the pipe behind file descriptor 2, stdout the real standard error.
_FILTER_CODE = r"""
import os, re, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
native, noise = re.compile(NATIVE), NOISE
maybe = re.compile(rb"^(?:[IWE]\d|[IWE]$)")
def drop(line):
    return native.match(line) is not None or line.rstrip(b"\r").startswith(noise)
out_ok, pending, continuing = True, b"", False
def put(data):
    global out_ok
    while data and out_ok:
        try:
            data = data[os.write(1, data):]
        except InterruptedError:
            pass
        except OSError:
            out_ok = False       # reader gone: keep draining so the writer never blocks
while True:
    try:
        chunk = os.read(0, 65536)
    except InterruptedError:
        continue
    except OSError:
        break
    if not chunk:
        break
    pending += chunk
    *lines, pending = pending.split(b"\n")
    out = []
    for line in lines:
        if continuing or not drop(line):
            out.append(line + b"\n")
        continuing = False
    # a partial line (a prompt, a progress bar) goes out now unless it may still become a dropped line
    if pending and (continuing or not (maybe.match(pending) or any(n.startswith(pending) for n in noise))):
        out.append(pending)
        pending, continuing = b"", True
    put(b"".join(out))
if pending and (continuing or not drop(pending)):
    put(pending)
""".replace("NATIVE", repr(_NATIVE)).replace("NOISE", repr(_NOISE))


def _verbose_args(argv: List[str], depth: int = 0) -> Optional[bool]:
    """Whether these arguments (and the flagfiles they name) ask for absl's verbosity; None: they don't say."""
    found = None
    args = iter(argv)
    for arg in args:
        if arg == "--":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-"):
            continue
        if name in ("verbosity", "v"):
            if not eq:
                value = next(args, "0")
            try:
                found = int(value) >= 0
            except ValueError:
                found = False  # absl refuses it: one error line, nothing to show
        elif name == "flagfile" and eq and depth < 5:
            for path in value.split(","):
                try:
                    with open(os.path.expanduser(path)) as f:
                        lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith(("#", "//"))]
                except OSError:
                    continue
                inner = _verbose_args(lines, depth + 1)
                found = inner if inner is not None else found
    return found


def _verbose(argv: Optional[List[str]] = None) -> bool:
    """True when the command line (or a flagfile on it) asks for ``--verbosity`` >= 0: nothing is filtered."""
    return bool(_verbose_args(list(sys.argv[1:] if argv is None else argv)))


class _StderrFilter:
    """File descriptor 2 -> pipe -> filter process -> real standard error; ``sys.stderr`` -> real standard error."""

    def __init__(self):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        self.real = os.dup(2)
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER_CODE], stdin=read_end,
                                         stdout=self.real, stderr=self.real, start_new_session=True)
        except OSError:
            os.close(read_end)
            os.close(write_end)
            os.close(self.real)
            raise
        os.close(read_end)
        os.dup2(write_end, 2)
        os.close(write_end)
        old = sys.stderr
        self.old_stderr = old
        sys.stderr = os.fdopen(os.dup(self.real), "w", buffering=1, encoding=getattr(old, "encoding", None),
                               errors=getattr(old, "errors", None) or "backslashreplace")
        _repoint_handlers(old, sys.stderr)
        atexit.register(self.close)

    def close(self):
        """Back to the real standard error for everything; waits (a little) for the filter to drain."""
        if self.proc is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.real, 2)    # the pipe's last write end in this process closes: the filter sees EOF
        os.close(self.real)
        try:
            self.proc.wait(timeout=2)   # longer only while a child process still holds the pipe
        except subprocess.TimeoutExpired:
            pass
        self.proc = None


def _repoint_handlers(old, new) -> None:
    """Logging handlers that write to the ``old`` stderr object (absl's, made when absl.logging was imported)
    write to ``new``."""
    handlers = list(std_logging.getLogger().handlers)
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        handlers.append(absl_logging.get_absl_handler().python_handler)
    for h in handlers:
        if getattr(h, "stream", None) is old:
            h.stream = new


_FILTER: Optional[_StderrFilter] = None


def quiet_native_logs(argv: Optional[List[str]] = None) -> None:
    """Call at the top of an app, before TensorFlow is imported: TensorFlow's native log lines are dropped from
    standard error unless the command line asks for ``--verbosity`` (see the module docstring). Idempotent; does
    nothing where standard error is already redirected in Python (pytest's capture, a notebook)."""
    global _FILTER  # one filter per process: it owns file descriptor 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # native INFO after absl::InitializeLog (cpu_feature_guard)
    if _FILTER is not None or _verbose(argv) or os.name != "posix" or not sys.executable:
        return
    if sys.stderr is not sys.__stderr__:   # someone else owns standard error (pytest's capture, a notebook)
        return
    try:
        _FILTER = _StderrFilter()
    except OSError:  # no pipe or no interpreter to start: the lines stay, nothing breaks
        _FILTER = None


def restore_native_logs() -> None:
    """Undo ``quiet_native_logs``: native lines reach standard error again."""
    global _FILTER
    if _FILTER is not None:
        _FILTER.close()
        _FILTER = None


class _Short(std_logging.Formatter):
    """'HH:MM:SS message' for INFO, 'warning: message' / 'error: message' above."""

    def format(self, record):
        text = record.getMessage()
        if record.levelno >= std_logging.ERROR:
            text = f"error: {text}"
        elif record.levelno >= std_logging.WARNING:
            text = f"warning: {text}"
        else:
            text = f"{self.formatTime(record, '%H:%M:%S')} {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _own_roots():
    package = os.path.dirname(os.path.abspath(__file__))
    roots = [package + os.sep, os.path.join(os.path.dirname(package), "apps") + os.sep]
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    roots.append(os.path.abspath(main) if main else "<")   # python -c / stdin: '<string>', '<stdin>'
    return tuple(roots)


class _OwnInfo(std_logging.Filter):
    """INFO from keras_sdd, the apps and the __main__ script only; warnings and errors from anywhere."""

    def __init__(self):
        super().__init__()
        self.roots = _own_roots()

    def filter(self, record):
        path = record.pathname
        return record.levelno >= std_logging.WARNING or \
            (path if path.startswith("<") else os.path.abspath(path)).startswith(self.roots)


def _showwarning(message, category, filename, lineno, file=None, line=None):
    from absl import logging

    kind = "" if category is UserWarning else f"{category.__name__}: "
    logging.warning("%s%s", kind, str(message).strip().replace("\n", " "))


def _verbosity_from_flags() -> Optional[int]:
    """absl's --verbosity when it was given (command line or flagfile) and the flags are parsed, else None."""
    from absl import flags

    try:
        flag = flags.FLAGS["verbosity"]
        return int(flag.value) if flags.FLAGS.is_parsed() and flag.present else None
    except (KeyError, TypeError, ValueError):
        return None


def wants_progress() -> bool:
    """Whether progress lines inside a round are wanted: not when ``--verbosity`` is given below 0 (``-1``: the
    per-round lines only, e.g. for a log file)."""
    verbosity = _verbosity_from_flags()
    return verbosity is None or verbosity >= 0


def configure_logging(verbosity: Optional[int] = None) -> None:
    """Short progress lines of our own (see the module docstring). ``verbosity``: absl's level (-1 warning,
    0 info, 1 debug); None: from ``--verbosity`` when given. At 0 or above, everything in absl's own format."""
    from absl import logging

    if verbosity is None:
        verbosity = _verbosity_from_flags()
    verbose = verbosity >= 0 if verbosity is not None else _verbose()
    handler = logging.get_absl_handler()
    if _FILTER is not None:
        _repoint_handlers(_FILTER.old_stderr, sys.stderr)
    if verbose:
        restore_native_logs()
        if verbosity is not None:
            logging.set_verbosity(verbosity)
        return
    for name in ("tensorflow", "tensorflow_datasets", "absl.tensorflow_datasets", "codecarbon", "matplotlib"):
        std_logging.getLogger(name).setLevel(std_logging.WARNING)
    logging.set_verbosity(logging.INFO)
    handler.setFormatter(_Short())
    if not any(isinstance(f, _OwnInfo) for f in handler.filters):
        handler.addFilter(_OwnInfo())
    warnings.showwarning = _showwarning


def _one_line(text) -> str:
    return " ".join(str(text).split("\n")).strip()


def refuse(error) -> None:
    """``error: <message>`` (one line) on standard error and exit code ``EXIT_BAD_INPUT``."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    print(f"error: {_one_line(error)}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


_HELP = {"help", "h", "?", "helpshort", "helpfull", "helpxml"}


def _asks_help(argv: List[str]) -> bool:
    for arg in argv:
        if arg == "--":
            return False
        if arg.startswith("-") and arg.lstrip("-").partition("=")[0] in _HELP:
            return True
    return False


class HelpLayout:
    """An app's own ``--help`` (its flags grouped by topic, key flags marked ``*``) and ``--helpshort`` (the key
    flags only, one line each). ``topics``: (title, first flag of the topic) in definition order: a topic holds
    the app's flags from its first one up to the next topic's. ``--helpfull`` stays absl's (every module)."""

    def __init__(self, title: str, topics: Sequence[tuple], key: Sequence[str], module: str = ""):
        self.title, self.topics, self.key, self.module = title, list(topics), list(key), module

    def _flags(self):
        """The app's own flags in definition order (absl files a ``__main__`` module's flags under argv[0])."""
        from absl import flags

        main = sys.modules.get("__main__")
        module = sys.argv[0] if getattr(main, "__name__", None) == "__main__" else None
        return list(flags.FLAGS.flags_by_module_dict().get(module or self.module, []))

    @staticmethod
    def _line(flag, width: int = 110) -> str:
        default = flag.default_as_str or ""
        text = f"  --{flag.name}{'=' + default.strip(chr(39)) if default and default != chr(39) * 2 else ''}: " \
               f"{' '.join(str(flag.help).split())}"
        return text if len(text) <= width else text[:width - 1] + "…"

    def short(self) -> str:
        from absl import flags

        lines = [self.title, "", "Key flags (--help: every flag of this app by topic; --helpfull: every module's):"]
        for name in self.key:
            if name in _GENERAL:
                lines.append(_GENERAL[name])
            elif name in flags.FLAGS:
                lines.append(self._line(flags.FLAGS[name]))
        return "\n".join(lines) + "\n"

    def full(self) -> str:
        lines = [self.title, "", "Flags by topic (* key flags, also in --helpshort; --helpfull adds absl's and "
                 "TensorFlow's own)."]
        starts = {first: title for title, first in self.topics}
        for flag in self._flags():
            if flag.name in starts:
                lines += ["", f"{starts[flag.name]}:"]
            mark = "*" if flag.name in self.key else " "
            lines.append(mark + self._line(flag, 1000)[1:])
        lines += ["", "general:"] + [("*" if name in self.key else " ") + line[1:]
                                     for name, line in _GENERAL.items()]
        return "\n".join(lines) + "\n"


#: absl's own flags, as the apps use them.
_GENERAL = {
    "flagfile": "  --flagfile: read flags from a file, one --flag=value a line (configs/*.flags); repeatable",
    "verbosity": "  --verbosity: not given: short lines, progress inside rounds; -1: no progress lines; 0: absl's format"}
_HELP_LAYOUT: Optional[HelpLayout] = None


def set_help_layout(layout: Optional[HelpLayout]) -> None:
    """Gives ``parse_flags`` an app's own ``--help`` / ``--helpshort`` (``HelpLayout``)."""
    global _HELP_LAYOUT
    _HELP_LAYOUT = layout


def _own_help(argv: List[str]) -> Optional[str]:
    if _HELP_LAYOUT is None:
        return None
    for arg in argv:
        if arg == "--":
            return None
        name = arg.lstrip("-").partition("=")[0] if arg.startswith("-") else None
        if name == "helpshort":
            return _HELP_LAYOUT.short()
        if name in ("help", "h", "?"):
            return _HELP_LAYOUT.full()
    return None


def parse_flags(argv: List[str]) -> List[str]:
    """absl flags parser for ``app.run(main, flags_parser=parse_flags)``: an unknown flag, a bad value, a failed
    validator or an unreadable flagfile is one ``error:`` line and exit 2; so is a stray positional argument.
    ``--help``/``--helpfull`` exit 0 after absl's help (absl itself exits 1)."""
    from absl import flags

    text = _own_help(argv[1:])
    if text is not None:
        sys.stdout.write(text)
        sys.stdout.flush()
        sys.exit(0)
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        refuse(re.sub(r"^ERROR::\s*", "", str(e)))
    except SystemExit as e:
        if e.code == 1 and _asks_help(argv[1:]):
            sys.exit(0)
        raise
    if len(rest) > 1:
        refuse(f"unexpected argument(s): {' '.join(rest[1:])} (flags take the form --name=value; see --helpfull)")
    return rest
