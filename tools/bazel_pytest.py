"""Runs one test file under pytest: the `main` of every generated py_test target in BUILD.

Bazel runs a py_test's main as a plain script, which would only import a pytest module; this runs the file's
tests instead, with the repository's pytest.ini (so `slow` tests stay deselected unless `-m slow` is passed:
``bazel test //:test_x --test_arg=-m --test_arg=slow``).
"""
import os
import sys

import pytest

if __name__ == "__main__":
    # Bazel runs tests from the runfiles tree's workspace root, where pytest.ini and tests/ are laid out.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.exit(pytest.main(sys.argv[1:]))
