"""README's "In your own Keras code" block runs as written (copied out of README.md, run in a fresh folder)."""
import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def readme_block(section: str) -> str:
    text = (REPO / "README.md").read_text()
    part = text[text.index(f"## {section}\n"):]
    return re.search(r"```python\n(.*?)```\n", part, re.S).group(1)


def test_own_keras_code_block_runs_as_written(tmp_path):
    code = readme_block("In your own Keras code")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    pruned = re.findall(r"IterativeMagnitudePruning: global sparsity [\d.]+ -> ([\d.]+)", done.stdout)
    assert [round(float(s), 2) for s in pruned] == [0.2, 0.36, 0.49]       # 20 % of the remaining, three times
    accuracy = re.search(r"test accuracy: pruned ([\d.]+) distilled student ([\d.]+)", done.stdout)
    assert accuracy and all(0.75 < float(a) <= 0.95 for a in accuracy.groups())   # Bayes accuracy is 0.9
    for logs in ("sparsity", "calibration", "cost"):
        assert list((tmp_path / "logs" / logs).rglob("events.out.tfevents.*")), logs
