"""The README's examples are executed, and its printed numbers are what the code prints today."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(README.read_text())
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})


def test_readme_fit_numbers_are_current(tmp_path, capsys):
    from ddpgkit.cli import main

    assert main(["fit", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    text = README.read_text()
    for key in ("initial loss:", "final loss after 100 steps:", "parameters:"):
        line = next(line for line in printed.splitlines() if line.startswith(key))
        number = line.split(":", 1)[1].split("(")[0].strip()
        assert f"{key} {number}" in text, f"README is stale: {line!r}"
