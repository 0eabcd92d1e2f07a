"""The tutorial (docs/tutorial/en and ja), executed from top to bottom as a reader runs it, so that no
example drifts from the code; and the Japanese font that its figures need."""

import warnings
from pathlib import Path

import matplotlib
import pytest

jupytext = pytest.importorskip("jupytext", reason="the tutorial's tests need the 'docs' extra")
nbclient = pytest.importorskip("nbclient", reason="the tutorial's tests need the 'docs' extra")

import matplotlib.pyplot as plt  # noqa: E402

from ddpgkit.analysis.plots import use_japanese_font  # noqa: E402  (also selects matplotlib's Agg backend)

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial"
NOTEBOOKS = sorted(TUTORIAL.glob("*/[0-9][0-9]_*.md"))


def test_both_languages_have_the_same_parts():
    en = [p.name for p in NOTEBOOKS if p.parent.name == "en"]
    ja = [p.name for p in NOTEBOOKS if p.parent.name == "ja"]
    assert len(en) == 5 and en == ja


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_notebook_runs_from_top_to_bottom(path, tmp_path):
    notebook = jupytext.read(path)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code, f"{path} has no code cells"
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    for cell in code:
        for output in cell.outputs:
            text = output.get("text", "")
            assert "missing from font" not in text, f"{path}: a figure lacks glyphs: {text[:200]}"
            assert "Traceback" not in text
    assert all(c.execution_count for c in code)  # every cell ran


def _draw(path: Path, title: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title(title)
        ax.set_xlabel("ステップ数 (environment steps)")
        fig.savefig(path)
        plt.close(fig)
    return [str(w.message) for w in caught]


def test_japanese_labels_render_without_missing_glyphs(tmp_path):
    title = "学習曲線：方策 μ(s) と価値 Q(s, a)"
    with matplotlib.rc_context():
        missing = _draw(tmp_path / "default.png", title)
    assert any("missing from font" in m for m in missing)  # matplotlib's own font has no Japanese
    with matplotlib.rc_context():
        assert use_japanese_font() == "IPAexGothic"
        assert _draw(tmp_path / "ja.png", title) == []
    assert (tmp_path / "ja.png").stat().st_size > 1000
