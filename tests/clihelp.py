"""Run the ddpgkit CLI in-process or as a real subprocess and capture what a user sees."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ddpgkit.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys, *args: str) -> Result:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_subprocess(*args: str, cwd: Path | None = None, timeout: float = 300) -> Result:
    exe = Path(sys.executable).with_name("ddpgkit")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ddpgkit.cli"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    return Result(p.returncode, p.stdout, p.stderr)


def assert_one_line_error(r: Result, *fragments: str) -> None:
    assert r.code != 0, r
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.err}"
    assert "Traceback" not in r.err
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"
