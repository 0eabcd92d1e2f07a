"""The README's and the user guide's examples are executed, and their printed numbers are what the code prints
today. (The README's commands themselves run in tests/test_readme_commands.py.)"""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
README_JA = README.parent / "README.ja.md"
GUIDE = README.parent / "docs" / "guide"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def guide_pages() -> list[Path]:
    pages = sorted(GUIDE.glob("*.md"))
    assert pages, "docs/guide has no pages"
    return pages


def test_readme_and_guide_python_examples_run(tmp_path, monkeypatch):
    """Every python block of README.md and of the user guide's pages runs as written, in a fresh directory."""
    monkeypatch.chdir(tmp_path)
    assert python_blocks(README.read_text(encoding="utf-8")), "README.md shows the Python API"
    for page in [README, *guide_pages()]:
        for block in python_blocks(page.read_text(encoding="utf-8")):
            exec(compile(block, str(page), "exec"), {"__name__": "readme"})


def test_readme_fit_numbers_are_current(tmp_path, capsys):
    """`ddpgkit fit`'s printed numbers are those the guide's fit page shows, the README's and README.ja.md's Python
    example prints in its comment, and README.ja.md explains."""
    from ddpgkit.cli import main

    assert main(["fit", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    fit_page = (GUIDE / "fit.md").read_text(encoding="utf-8")
    numbers = {}
    for key in ("initial loss:", "final loss after 100 steps:", "parameters:"):
        line = next(line for line in printed.splitlines() if line.startswith(key))
        numbers[key] = line.split(":", 1)[1].split("(")[0].strip()
        assert f"{key} {numbers[key]}" in fit_page, f"docs/guide/fit.md is stale: {line!r}"
    comment = f"# {numbers['initial loss:']} -> {numbers['final loss after 100 steps:']}"
    for page in (README, README_JA):
        assert comment in page.read_text(encoding="utf-8"), f"{page.name}'s fit example does not print {comment!r}"
    assert f"initial loss: {numbers['initial loss:']}" in README_JA.read_text(encoding="utf-8")


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


def test_make_figures_draws_every_committed_picture():
    """`make figures` runs benchmarks/figures.sh; one of its cp commands copies each picture committed under
    docs/fit, docs/pendulum and docs/sweep (and their ja/ folders) to its place, so none is drawn by hand or left
    stale; and a page shows each one (a picture no page shows is one nobody checks)."""
    import subprocess

    root = README.parent
    p = subprocess.run(["make", "--no-print-directory", "-n", "-o", "install", "figures"], cwd=root,
                       capture_output=True, text=True, check=True)
    assert "bash benchmarks/figures.sh" in p.stdout
    script = (root / "benchmarks" / "figures.sh").read_text().replace("\\\n", " ")
    copies = [[a.strip('"') for a in line.split()[1:]]  # [sources..., target] of each cp command
              for line in script.splitlines() if line.startswith("cp ")]
    pages = "".join(f.read_text(encoding="utf-8") for f in [*root.glob("*.md"), *(root / "docs").rglob("*.md"),
                                                            root / "benchmarks" / "README.md"])
    pictures = sorted(f for d in ("fit", "pendulum", "sweep") for f in (root / "docs" / d).rglob("*")
                      if f.suffix in (".png", ".gif"))
    assert len(pictures) >= 10
    for picture in pictures:
        name = str(picture.relative_to(root))
        written = any(args[-1] == f"$ROOT/{name}" or (args[-1] == f"$ROOT/{picture.parent.relative_to(root)}/"
                                                      and any(src.endswith("/" + picture.name) for src in args[:-1]))
                      for args in copies)
        assert written, f"{name} is not written by benchmarks/figures.sh"
        assert str(picture.relative_to(root / "docs")) in pages, f"{name}: no page shows it"


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
    """The sweep spec the guide shows (docs/guide/seeds.md) loads as written and expands to the trials it
    describes."""
    from ddpgkit.experiments.sweep import SweepSpec

    blocks = re.findall(r"```toml\n(.*?)```", (GUIDE / "seeds.md").read_text(encoding="utf-8"), flags=re.S)
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
    """README.ja.md's Python example runs as written, and its console blocks are the English README's — the same
    commands in the same order, showing the same output (which tests/test_readme_commands.py checks)."""
    from tests.test_readme_commands import console_steps

    ja = README_JA.read_text(encoding="utf-8")
    assert "README.ja.md" in README.read_text(encoding="utf-8")  # linked from the README
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(ja)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.ja.md", "exec"), {"__name__": "readme_ja"})
    assert console_steps(ja) == console_steps(README.read_text(encoding="utf-8"))


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)


def test_japanese_readme_links_resolve():
    root = README.parent
    ja = README_JA.read_text(encoding="utf-8")
    targets = _links(ja)
    assert targets
    missing = [t for t in targets if not t.startswith("http") and not (root / t).exists()]
    assert not missing, missing
    assert "docs/tutorial/ja/01_networks.md" in targets  # the Japanese tutorial
    assert {f"docs/guide/{p.name}" for p in guide_pages()} <= set(targets)  # every guide page


def test_readme_and_guide_links_resolve():
    """The README links every guide page, and every relative link of the README and of the guide leads to a file
    (the site's build checks the same, with the anchors, in tests/test_site.py)."""
    pages = [README, *guide_pages()]
    for page in pages:
        missing = [t for t in _links(page.read_text(encoding="utf-8"))
                   if not t.startswith(("http:", "https:")) and not (page.parent / t).exists()]
        assert not missing, f"{page.name}: {missing}"
    readme_targets = set(_links(README.read_text(encoding="utf-8")))
    assert {f"docs/guide/{p.name}" for p in guide_pages()} <= readme_targets
    index = (README.parent / "docs" / "index.md").read_text(encoding="utf-8")
    assert all(f"guide/{p.stem}\n" in index for p in guide_pages()), "docs/index.md's user guide toctree"


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
