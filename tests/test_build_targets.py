"""BUILD gives every app a py_binary, every test file a py_test, and the library one py_library.

BUILD generates those targets from globs, so this guards the globs and the naming (apps/NAME.py -> //:NAME,
tests/test_NAME.py -> //:test_NAME) rather than a hand-kept list. It runs one ``bazel query`` (Bazel 4.2.3,
Debian's bazel-bootstrap: loading native py_* rules needs no download), in batch mode with a throw-away output
base, so no Bazel server stays behind and no ``bazel-*`` link is left in the repository.

Skipped where Bazel is not installed, except in CI (CI=true), where .ci/run installs it and its absence fails.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# One query instead of one per kind: each Bazel start costs seconds. The union adds the library's sources.
QUERY = 'kind("py_(binary|library|test) rule", //...) + labels(srcs, //:keras_sdd)'


def _bazel():
    bazel = shutil.which("bazel")
    if bazel is None:
        message = "bazel not found (Debian: apt-get install -y bazel-bootstrap)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; .ci/run installs it, so CI must have it")
        pytest.skip(message)
    return bazel


@pytest.fixture(scope="module")
def query(tmp_path_factory):
    """{label: kind} for the py_* rules of //... and the source files of //:keras_sdd."""
    bazel = _bazel()
    links_before = sorted(p.name for p in REPO.glob("bazel-*"))
    output_base = tmp_path_factory.mktemp("bazel_output_base")
    # --nohome_rc only: Debian's system rc (/etc/bazel/bazelrc) sets --install_base=/usr/share/bazel, without
    # which its bazel cannot start (so no --ignore_all_rc_files and no --output_user_root).
    command = [bazel, "--batch", f"--output_base={output_base}", "--nohome_rc",
               "query", QUERY, "--output=label_kind"]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
    finally:
        links_after = sorted(p.name for p in REPO.glob("bazel-*"))
        shutil.rmtree(output_base, ignore_errors=True)  # read-only files inside would fail the tmp cleanup
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    assert links_after == links_before, f"bazel left links in the repository: {links_after}"
    kinds = {}
    for line in done.stdout.splitlines():
        kind, _, label = line.rpartition(" ")
        if label.startswith("//"):
            kinds[label] = kind
    return kinds


def _labels(kinds, kind):
    return {label for label, k in kinds.items() if k == kind}


def test_library_target_has_every_module(query):
    assert query.get("//:keras_sdd") == "py_library rule"
    modules = {f"//:{p.relative_to(REPO).as_posix()}" for p in (REPO / "keras_sdd").rglob("*.py")}
    assert modules, "no keras_sdd/**/*.py found"
    missing = sorted(modules - _labels(query, "source file"))
    assert not missing, f"modules not in //:keras_sdd srcs: {missing}"


def test_every_app_has_a_py_binary(query):
    apps = {f"//:{p.stem}" for p in (REPO / "apps").glob("*.py") if p.name != "__init__.py"}
    missing = sorted(apps - _labels(query, "py_binary rule"))
    assert not missing, f"apps without a py_binary target: {missing}"


def test_every_test_file_has_a_py_test(query):
    tests = {f"//:{p.stem}" for p in (REPO / "tests").glob("test_*.py")}
    assert "//:test_build_targets" in tests
    missing = sorted(tests - _labels(query, "py_test rule"))
    assert not missing, f"test files without a py_test target: {missing}"
