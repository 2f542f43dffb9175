"""The README's Keras 3 example runs as written (the code block is read from README.md, not copied here)."""
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Keras 3\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_keras3_example_runs(run_keras3, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(readme_example() + "\nprint('SAVED', sorted(p.name for p in __import__('pathlib').Path('.')"
                      ".glob('*.keras')))\n", encoding="utf-8")
    proc = run_keras3([str(script)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "sparsity per epoch: [0.0, 0.2, 0.36, 0.488]" in proc.stdout, proc.stdout[-2000:]
    assert "SAVED ['pruned.keras', 'student.keras']" in proc.stdout
    assert any((tmp_path / "logs" / name).iterdir() for name in ("sparsity", "calibration", "cost"))
