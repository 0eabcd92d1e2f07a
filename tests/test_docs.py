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


def test_make_targets_run_what_the_readme_says():
    """`make fit` runs the chapter's fit and `make run` trains Pendulum (a dry run prints the commands)."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        import pytest

        pytest.skip("make is not installed")
    root = README.parent

    def commands(target: str) -> list[str]:
        # --no-print-directory: under `make test` this make is a sub-make, which would otherwise print the
        # checkout's path (which may well contain "ddpgkit") in an "Entering directory" line
        p = subprocess.run(["make", "--no-print-directory", "-n", "-o", "install", target], cwd=root,
                           capture_output=True, text=True, check=True)
        return [line for line in p.stdout.splitlines() if "bin/ddpgkit " in line]

    assert [c.split("ddpgkit ", 1)[1] for c in commands("fit")] == ["fit"]
    assert [c.split("ddpgkit ", 1)[1] for c in commands("run")] == ["train Pendulum-v1 --preset pendulum --overwrite"]
    text = README.read_text()
    assert "`make fit` runs the chapter's fit" in text


def test_architecture_names_every_module():
    """docs/ARCHITECTURE.md is the map of the code: every module of the package appears in it."""
    doc = (README.parent / "docs" / "ARCHITECTURE.md").read_text()
    package = README.parent / "src" / "ddpgkit"
    missing = []
    for path in sorted(package.rglob("*.py")):
        name = path.name
        if name == "__init__.py" and path.parent != package:
            name = path.parent.name + "/"
        if name not in doc:
            missing.append(str(path.relative_to(package)))
    assert not missing, f"docs/ARCHITECTURE.md does not mention: {missing}"


def test_the_api_reference_documents_every_library_module():
    """docs/api has an automodule for every module of the library (the CLI, the package root and its version
    apart): a new module cannot be left out of the site."""
    api = "".join(p.read_text() for p in (README.parent / "docs" / "api").glob("*.md"))
    documented = set(re.findall(r"automodule:: (\S+)", api))
    package = README.parent / "src" / "ddpgkit"
    modules = set()
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if name not in ("ddpgkit", "ddpgkit._version") and not name.startswith("ddpgkit.cli"):
            modules.add(name)
    assert modules - documented == set(), "not in docs/api: " + ", ".join(sorted(modules - documented))
    assert documented - modules == set(), "docs/api names modules that do not exist"


def test_readme_sweep_spec_is_a_valid_spec(tmp_path):
    """The sweep spec the README shows loads as written and expands to the trials it describes."""
    from ddpgkit.experiments.sweep import SweepSpec

    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    spec_text = next(b for b in blocks if "envs =" in b)
    path = tmp_path / "pendulum-10.toml"
    path.write_text(spec_text)
    trials = SweepSpec.load(path).trials(tmp_path)
    assert len(trials) == 10 and {t.config.total_steps for t in trials} == {20000}


def test_benchmark_sweep_specs_are_valid_and_use_the_tables_entries(tmp_path):
    """The specs benchmarks/README.md runs load, and their trials start from each env's table entry (or the
    preset the spec names)."""
    from ddpgkit.experiments.sweep import SweepSpec

    specs = sorted((README.parent / "benchmarks" / "sweeps").glob("*.toml"))
    assert specs
    for path in specs:
        for t in SweepSpec.load(path).trials(tmp_path):
            assert t.origin["defaults"] == (f"preset:{t.preset}" if t.preset else f"table:{t.env_id}"), path


def test_japanese_readme_example_runs_and_its_commands_are_the_readmes(tmp_path, monkeypatch):
    """README.ja.md's Python example runs as written, and each command it shows is one the English README
    shows too (whose numbers the tests above keep current)."""
    ja = (README.parent / "README.ja.md").read_text(encoding="utf-8")
    assert "README.ja.md" in README.read_text()  # linked from the README
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(ja)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.ja.md", "exec"), {"__name__": "readme_ja"})
    commands = re.findall(r"^\$ (\.venv/bin/ddpgkit .*)$", ja, flags=re.M)
    assert commands
    english = README.read_text()
    for command in commands:
        assert command.split(" runs/")[0] in english, command


def test_japanese_readme_links_resolve():
    root = README.parent
    ja = (root / "README.ja.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", ja)
    assert targets
    missing = [t for t in targets if not t.startswith("http") and not (root / t).exists()]
    assert not missing, missing


def _documented(cls: type, name: str) -> bool:
    """``cls.name`` has a docstring, or overrides a documented method of a ddpgkit base class (a hook)."""
    import inspect

    for base in cls.__mro__:
        if name in vars(base) and base.__module__.startswith("ddpgkit"):
            member = vars(base)[name]
            func = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if inspect.getdoc(func):
                return True
    return False


def test_every_public_name_has_a_docstring():
    """The API reference is generated from the docstrings: every module, and every public class, function,
    method and property of the library (the CLI's commands are documented by their --help), has one."""
    import importlib
    import inspect
    import pkgutil

    import ddpgkit

    missing = []
    for info in pkgutil.walk_packages(ddpgkit.__path__, "ddpgkit."):
        if info.name.startswith("ddpgkit.cli") or info.name == "ddpgkit._version":
            continue
        module = importlib.import_module(info.name)
        if not inspect.getdoc(module):
            missing.append(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not (obj.__doc__ or "").strip():
                missing.append(f"{info.name}.{name}")
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    func = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if not attr.startswith("_") and inspect.isfunction(func) and not _documented(obj, attr):
                        missing.append(f"{info.name}.{name}.{attr}")
    assert not missing, missing
