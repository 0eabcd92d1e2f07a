"""The README's commands, run as a newcomer runs them: in a fresh copy of the repository, in the README's order,
each printing the lines the README shows after it.

Every ```console block of README.md is read in order: a line ``$ COMMAND`` is run with bash in the copy, and the
lines after it, up to the next command, are the first non-empty lines the command must print (stdout and stderr
together). In those lines ``…`` stands for one number that varies with time only (seconds, steps/s); every other
number must be printed exactly — runs are deterministic on one machine. Float kernels differ between CPUs,
though, so on a CPU other than the one the README's numbers were printed on (``RECORDED_ON``) the numbers are
compared as placeholders too, and the test says so in a warning.

The copy: the files ``git ls-files -co --exclude-standard`` lists (what a clone of the working tree holds, ignored
files such as runs/ left out, so nothing of an earlier run is there), with this checkout's .venv linked in as
``.venv``, the one the README's ``.venv/bin/...`` commands use.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from ddpgkit.runtime import cpu_description

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV = ROOT / ".venv"
STAMP = VENV / ".ddpgkit-installed"  # the Makefile's mark of a finished `make install`

# the CPU the README's outputs were printed on: its model name and the vector/matrix features that choose torch's
# kernels
RECORDED_ON = ("AMD EPYC", frozenset({"avx2", "avx512f", "avx512_bf16"}))
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
PLACEHOLDER = "…"
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES", "MAKE_TERMOUT", "MAKE_TERMERR")

# `make test` runs the suite with a worker per core; this test trains for about two minutes, on its own worker
pytestmark = pytest.mark.xdist_group("readme_commands")


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines shown after it) for every ``$ `` line of the text's console blocks, in order."""
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif line.strip():
                assert steps, f"output before any command in a console block: {line!r}"
                steps[-1][1].append(line)
    return steps


def cpu_signature() -> tuple[str, frozenset[str]]:
    """This CPU's model name and which of KERNEL_FLAGS it has (:func:`ddpgkit.runtime.cpu_description`)."""
    model, flags = cpu_description()
    return model, flags & frozenset(KERNEL_FLAGS)


def shown_matches(shown: str, printed: str, exact_numbers: bool) -> bool:
    """Whether a printed line is the line the README shows, ``…`` standing for any one number."""
    if not exact_numbers:
        def mask(s: str) -> str:
            return re.sub(NUMBER, "#", s)

        return mask(shown.replace(PLACEHOLDER, "0")) == mask(printed)
    pattern = re.escape(shown).replace(re.escape(PLACEHOLDER), NUMBER)
    return re.fullmatch(pattern, printed) is not None


def test_console_steps_reads_commands_and_their_output():
    text = "x\n```console\n$ a b\nline 1\n\nline 2\n$ c\n```\n```bash\n$ not this\n```\n```console\n$ d\n```\n"
    assert console_steps(text) == [("a b", ["line 1", "line 2"]), ("c", []), ("d", [])]
    assert shown_matches("time: … s (… steps/s)", "time: 30.1 s (664 steps/s)", True)
    assert not shown_matches("final evaluation: -116.0 ± 60.9", "final evaluation: -113.4 ± 66.1", True)
    assert shown_matches("final evaluation: -116.0 ± 60.9", "final evaluation: -113.4 ± 66.1", False)
    assert not shown_matches("wrote: a.png", "wrote: b.png", False)


def working_tree_copy(dest: Path) -> None:
    """The files of this checkout that a clone of it would hold, as they are in the working tree (a clone of the
    commit would miss what is not committed yet; CI's checkout is a clean clone, where the two agree)."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / os.fsdecode(name)
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target = dest / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copyfile(src, target)  # new file times, as a clone's
            shutil.copymode(src, target)


def test_the_readme_commands_print_what_the_readme_shows(tmp_path):
    steps = console_steps(README.read_text(encoding="utf-8"))
    assert steps and steps[0][0] == "make run", "the README starts with `make run`"
    assert len(steps) == 6, "`make run` and the next five commands"
    if shutil.which("make") is None or shutil.which("git") is None or shutil.which("bash") is None:
        pytest.skip("needs make, git and bash")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    if not STAMP.is_file():
        pytest.skip(".venv was not made by `make install` (no .venv/.ddpgkit-installed): `make run` would install")

    clone = tmp_path / "clone"
    working_tree_copy(clone)
    (clone / ".venv").symlink_to(VENV)
    # `make run` depends on `install`, whose stamp is older than a fresh clone's pyproject.toml and constraints.txt
    # (a checkout gives every file the time of the checkout), so make would run pip — and `pip install -e .` from
    # the copy would point this checkout's .venv at a temporary directory. The .venv is the one this test runs in,
    # installed from these same files; the copy's two files get the stamp's time, so make sees the install as
    # done, as it does in the checkout that made it. Checked with a dry run before anything runs.
    stamp = STAMP.stat()
    for name in ("pyproject.toml", "constraints.txt"):
        os.utime(clone / name, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    # a newcomer's shell: no make variables of an enclosing `make test` (a sub-make prints "Entering directory"
    # lines), none of pytest's; Python unbuffered so that stdout and stderr keep their order in one pipe
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES and not k.startswith("PYTEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    dry = subprocess.run(["make", "-n", "run"], cwd=clone, env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and "pip install" not in dry.stdout, "make would install:\n" + dry.stdout + dry.stderr

    exact = cpu_signature() == RECORDED_ON
    if not exact:
        warnings.warn(f"the README's numbers were printed on {RECORDED_ON[0]} with {sorted(RECORDED_ON[1])}; this "
                      f"CPU ({cpu_signature()}) rounds differently, so numbers were compared as placeholders",
                      stacklevel=1)
    for command, shown in steps:
        p = subprocess.run(["bash", "-c", command], cwd=clone, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=600)
        assert p.returncode == 0, f"`{command}` failed ({p.returncode}):\n{p.stdout[-3000:]}"
        printed = [line for line in p.stdout.splitlines() if line.strip()]
        assert len(printed) >= len(shown), f"`{command}` printed fewer lines than the README shows:\n{p.stdout}"
        for want, got in zip(shown, printed):
            assert shown_matches(want, got, exact), f"`{command}`: the README shows\n  {want}\nit printed\n  {got}"
    assert (STAMP.stat().st_mtime_ns, STAMP.stat().st_ino) == (stamp.st_mtime_ns, stamp.st_ino)  # make left it
