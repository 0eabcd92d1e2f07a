"""Figures in Japanese (issue 28): every English template the figures draw has its Japanese text, and a
figure drawn with ``use_language("ja")`` is labelled in Japanese, without missing glyphs."""

import ast
import importlib.util
import re
import string
import warnings
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from ddpgkit.analysis import language, plots, report
from ddpgkit.analysis.inspection import pendulum_slice
from ddpgkit.analysis.language import JAPANESE, text
from ddpgkit.errors import ConfigError

# found, not imported: importing matplotlib_fontja changes rcParams for every later test of the process
pytestmark = pytest.mark.skipif(importlib.util.find_spec("matplotlib_fontja") is None,
                                reason="Japanese figures need the 'docs' extra")

SOURCES = Path(language.__file__).resolve().parent.parent


def _templates() -> set[str]:
    """The first argument of every ``text(...)`` call in the package that is a string, or either branch of
    ``A if c else B``; dynamic arguments are checked below from the tables they come from."""
    found = set()
    for path in SOURCES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "text" and node.args:
                arg = node.args[0]
                for leaf in (arg.body, arg.orelse) if isinstance(arg, ast.IfExp) else (arg,):
                    if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                        found.add(leaf.value)
    return found


def test_every_template_has_its_japanese_text():
    templates = _templates()
    assert len(templates) > 40  # the scan finds the figures' calls
    dynamic = {s for panel, ylabel, _, lines in plots._HEALTH_PANELS
               for s in (panel, ylabel, *(name for _, name, _ in lines))}
    plane = pendulum_slice()
    dynamic |= {plane.x_label, plane.y_label, plane.description, "evaluation return", "success rate"}
    dynamic |= {k + (" (max over evaluations)" if k.startswith("best") else "")
                for k in ("final IQM", "final mean", "best IQM", "best mean")}
    words = {t for t in templates | dynamic if re.search("[A-Za-z]{2,}", t)}  # not symbols alone: "Q", "|δ|"
    missing = sorted(words - set(JAPANESE))
    assert not missing, f"no Japanese text for: {missing}"
    for english, japanese in JAPANESE.items():  # the same fields on both sides
        fields = [sorted(f for _, f, _, _ in string.Formatter().parse(t) if f) for t in (english, japanese)]
        assert fields[0] == fields[1], english


def test_text_fills_fields_in_the_current_language():
    assert text("environment steps") == "environment steps"
    with language.language("ja"):
        assert text("environment steps") == "環境ステップ数"
        assert text("last evaluation: Q − G = {gap}", gap="+1.5") == "最後の評価：Q − G = +1.5"
        assert text("no such template {x}", x=1) == "no such template 1"  # stays English
    assert language.current_language() == "en"
    with pytest.raises(ConfigError, match="unknown language 'fr'; valid: en, ja"):
        language.use_language("fr")


def _texts_of_saved_figures(monkeypatch) -> list[str]:
    seen: list[str] = []
    save = Figure.savefig

    def recording(fig, *args, **kwargs):
        seen.extend(t.get_text() for t in fig.findobj(Text) if t.get_text())
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    return seen


def test_ddpg_figures_in_japanese_have_japanese_axes_and_no_missing_glyphs(tmp_path, monkeypatch):
    rows = [{"step": s, "episode_return": -900.0 + s / 10, "eval_mean": -800.0 + s / 10, "eval_std": 50.0,
             "eval_q_mean": -60.0 + s / 100, "eval_mc_return": -70.0 + s / 100, "critic_loss": 1.0 + 1 / s,
             "critic_grad_norm": 10.0, "actor_grad_norm": 1.0, "td_error_mean": 0.5, "td_error_max": 5.0,
             "q_mean": -20.0, "q_max": 0.0, "q_min": -50.0, "tanh_saturated": 0.3, "action_at_bound": 0.1,
             "noise_rms": 0.2} for s in range(1000, 6000, 1000)]
    seen = _texts_of_saved_figures(monkeypatch)
    with language.language("ja"), warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" fails the test
        plots.plot_learning_curves(tmp_path / "curve.png", [("s0", rows)])
        plots.plot_health(tmp_path / "health.png", [("s0", rows)])
        plots.plot_value_check(tmp_path / "values.png", [("s0", rows)], "タイトル")
    assert {"環境ステップ数", "学習曲線", "学習の健全性", "探索ノイズ", "クリティックの Q(s, μ(s))"} <= set(seen)
    assert not {"environment steps", "Learning curve", "Training health", "episode return"} & set(seen)
    assert sum("タイトル" in t for t in seen) == 1  # the value check's one title


def test_report_figures_share_one_return_scale(tmp_path, monkeypatch):
    """final_and_best.png: the four panels on one x scale, so an interval's width reads the same in each."""
    axes_limits = []
    save = Figure.savefig

    def recording(fig, *args, **kwargs):
        if len(fig.axes) == 4:
            axes_limits.extend(ax.get_xlim() for ax in fig.axes)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    from ddpgkit.analysis.stats import Estimate

    group = report.Group(env_id="Pendulum-v1", config={}, runs=[], label="g")
    group.stats = {"final IQM": Estimate(-125.0, -132.0, -120.0), "final mean": Estimate(-126.0, -131.0, -121.0),
                   "best IQM": Estimate(-122.0, -128.0, -118.0), "best mean": Estimate(-123.0, -127.0, -118.5)}
    report._interval_figure(tmp_path / "final_and_best.png", [group])
    assert len(axes_limits) == 4 and len(set(axes_limits)) == 1


def test_the_commands_draw_in_the_language_asked(tmp_path, capsys):
    from tests.clihelp import assert_one_line_error, run_cli, run_subprocess
    from tests.pngcheck import assert_png

    r = run_subprocess("fit", "--steps", "5", "--lang", "ja", "--out", tmp_path / "ja")  # a process: the language
    assert r.code == 0 and "missing from font" not in r.err, r.err                     # is the process's own
    assert_png(tmp_path / "ja" / "fit.png")
    for command in (("fit", "--steps", "5"), ("plot", tmp_path), ("report", tmp_path), ("inspect", tmp_path)):
        assert_one_line_error(run_cli(capsys, *command, "--lang", "fr"), "unknown --lang 'fr'; valid: en, ja")
