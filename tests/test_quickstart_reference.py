"""The README's quickstart numbers are those of the current code: a fresh quickstart equals the committed
reference ``docs/quickstart_rounds.csv`` (made by ``python -m tools.quickstart_reference``).

Exactly (every non-time column) on the machine kind that made the reference — x86_64 Linux, this TensorFlow —
and within 2 accuracy points elsewhere, where other CPU kernels round differently. Slow: ~2 minutes on 2 cores.
"""
import pathlib
import platform
import subprocess
import sys

import pytest
import tensorflow as tf

from keras_sdd.study.records import TIME_FIELDS, read_rounds

REPO = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_TF = "2.21"
TOLERANCE = 0.02


@pytest.mark.slow
def test_fresh_quickstart_matches_the_committed_reference(tmp_path):
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    (ref_dir / "rounds.csv").write_bytes((REPO / "docs" / "quickstart_rounds.csv").read_bytes())
    done = subprocess.run([sys.executable, "-m", "apps.sdd", "--flagfile=configs/quickstart.flags",
                           f"--logdir={tmp_path / 'q'}", "--notrack_energy"], cwd=REPO, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    want, got = read_rounds(ref_dir), read_rounds(tmp_path / "q")
    assert len(got) == len(want)
    exact = platform.machine() == "x86_64" and platform.system() == "Linux" and tf.__version__.startswith(REFERENCE_TF)
    for w, g in zip(want, got):
        for key, value in w.items():
            if key in TIME_FIELDS or value is None or key.startswith(("energy", "co2")):
                continue
            if exact or not isinstance(value, float):
                assert g[key] == value, (w["round"], key)
            else:
                assert g[key] == pytest.approx(value, abs=TOLERANCE), (w["round"], key)
