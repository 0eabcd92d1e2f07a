"""The language of the figures' words: English, or Japanese for the tutorial's Japanese pages.

Every title, axis label and legend entry ddpgkit draws goes through :func:`text`, which returns the
English template as written or its Japanese entry in :data:`JAPANESE`, filled with the given values.
``use_language("ja")`` switches every figure drawn afterwards to Japanese (and adds the Japanese font,
:func:`use_japanese_font`); :func:`language` does the same for a ``with`` block only. A test checks
that every template the figures use has its Japanese entry.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import matplotlib
from matplotlib import font_manager

from ..errors import ConfigError

#: The languages figures can be labelled in.
LANGUAGES = ("en", "ja")

# The Japanese font: IPAexGothic, as the matplotlib-fontja package ships it (the `docs` extra).
JAPANESE_FONT = "IPAexGothic"
_FONTJA_PACKAGE, _FONTJA_FILE = "matplotlib_fontja", "fonts/ipaexg.ttf"

_current = "en"

#: Each English template of the figures and its Japanese text; ``{name}`` fields are filled by :func:`text`.
#: The terms are the chapter's (損失関数, 教師データ, フィッティング) and the tutorial's.
JAPANESE: dict[str, str] = {
    # the chapter's figures (plots.py)
    "Activation function: {name}": "活性化関数：{name}",
    "Untrained network": "学習前のネットワーク",
    "Fitted network": "フィッティング後のネットワーク",
    "Fitted network after {steps} steps": "{steps} ステップのフィッティング後のネットワーク",
    "training data ({name})": "教師データ（{name}）",
    "Training data: {name}, {n} points": "教師データ：{name}、{n} 点",
    "target y": "教師データの y",
    "prediction f(x; ω)": "予測 f(x; ω)",
    "exact": "予測 = 教師データ",
    "Training loss": "損失関数の推移",
    "step": "ステップ",
    "MSE loss L(ω; D)": "損失関数 L(ω; D)（平均二乗誤差）",
    # DDPG's figures (plots.py)
    "environment steps": "環境ステップ数",
    "Learning curve": "学習曲線",
    "episode return": "エピソードの収益",
    "{label}: training episodes": "{label}：学習中のエピソード",
    "{label}: evaluation (mean ± std)": "{label}：評価（平均 ± 標準偏差）",
    "critic's Q(s, μ(s))": "クリティックの Q(s, μ(s))",
    "discounted return obtained": "実際に得た割引収益",
    "value (discounted return)": "価値（割引収益）",
    "The critic's Q against the returns obtained\n(means over the evaluation episodes' states)":
        "クリティックの Q と実際に得た収益\n（評価エピソードの状態での平均）",
    "(means over the evaluation episodes' states)": "（評価エピソードの状態での平均）",
    "last evaluation: Q − G = {gap}": "最後の評価：Q − G = {gap}",
    "The critics against the returns obtained": "クリティックの Q と実際に得た収益",
    "The critic of {env} against the returns obtained": "{env} のクリティックの Q と実際に得た収益",
    "The critics against the returns obtained on {env}": "{env} でのクリティックの Q と実際に得た収益",
    "Training health": "学習の健全性",
    "Training health: {title}": "学習の健全性：{title}",
    "Gradient norms": "勾配のノルム",
    "‖∇‖₂ (all layers)": "‖∇‖₂（全層）",
    "critic ‖∇φ L‖": "クリティックの ‖∇φ L‖",
    "actor ‖∇θ L_μ‖": "アクターの ‖∇θ L_μ‖",
    "TD error |δ| = |Q(s, a) − y|": "TD 誤差 |δ| = |Q(s, a) − y|",
    "mean": "平均",
    "max": "最大",
    "min": "最小",
    "Q(s, a) on the training batches": "学習バッチ上の Q(s, a)",
    "Saturation": "飽和",
    "share": "割合",
    "μ's pre-tanh outputs with tanh' < 0.01": "tanh' < 0.01 となる μ の tanh 前の出力",
    "exploration actions at a bound": "行動範囲の端にある探索行動",
    "Exploration noise": "探索ノイズ",
    "RMS of the noise drawn (action units)": "加えたノイズの RMS（行動の単位）",
    "noise RMS": "ノイズの RMS",
    "Losses": "損失関数",
    "loss": "損失",
    "critic L(φ)": "クリティックの L(φ)",
    "not in these metrics": "この metrics.csv にはありません",
    # inspect's value maps (inspection.py)
    "policy μ(s)": "方策 μ(s)",
    "value Q(s, μ(s))": "価値 Q(s, μ(s))",
    "Q (discounted return)": "Q（割引収益）",
    "evaluation episode": "評価エピソード",
    "start": "開始",
    "torque (N·m)": "トルク (N·m)",
    "angle θ (rad, 0 = upright)": "角度 θ (rad、0 = 倒立)",
    "angular velocity θ̇ (rad/s)": "角速度 θ̇ (rad/s)",
    "the pendulum's state (θ, θ̇)": "振り子の状態 (θ, θ̇)",
    "What DDPG learned on {env}, step {step}: over {plane}; its hardest evaluation episode, return {ret}":
        "{env} で DDPG が学習したもの（{step} ステップ）：{plane}、最も難しかった評価エピソード（収益 {ret}）",
    "{env}, step {step}: μ(s) and Q(s, μ(s)) over {plane}; evaluation return {ret}":
        "{env}、{step} ステップ：{plane} 上の μ(s) と Q(s, μ(s))、評価の収益 {ret}",
    # report's figures (report.py)
    "final IQM": "最終評価の IQM",
    "final mean": "最終評価の平均",
    "best IQM (max over evaluations)": "最良評価の IQM（評価の最大値）",
    "best mean (max over evaluations)": "最良評価の平均（評価の最大値）",
    "return": "収益",
    "Final and best evaluation returns: estimate and 95% stratified-bootstrap CI":
        "最終評価と最良評価の収益：推定値と 95% 層化ブートストラップ信頼区間",
    "evaluation return": "評価の収益",
    "success rate": "成功率",
    "{env}: IQM of evaluation returns, 95% CI band": "{env}：評価の収益の IQM と 95% 信頼区間",
    "{env}: IQM of evaluation success rates, 95% CI band": "{env}：評価の成功率の IQM と 95% 信頼区間",
    "probability of improvement (final return), 95% CI": "改善確率（最終評価の収益）と 95% 信頼区間",
}


def text(template: str, **values: object) -> str:
    """``template`` in the current language (:func:`use_language`), its ``{name}`` fields filled from
    ``values``; a template without a Japanese entry stays English."""
    if _current == "ja":
        template = JAPANESE.get(template, template)
    return template.format(**values) if values else template


def current_language() -> str:
    """The language figures are labelled in now: "en" or "ja"."""
    return _current


def use_language(lang: str) -> None:
    """Label every figure drawn from now on in ``lang`` ("en" or "ja"); "ja" also adds the Japanese font
    (:func:`use_japanese_font`). An unknown language raises ConfigError."""
    global _current
    if lang not in LANGUAGES:
        raise ConfigError(f"unknown language {lang!r}; valid: {', '.join(LANGUAGES)}")
    if lang == "ja":
        use_japanese_font()
    _current = lang


@contextlib.contextmanager
def language(lang: str) -> Iterator[None]:
    """``with language("ja"):`` labels the figures drawn inside the block in ``lang``; the language and
    matplotlib's font settings are restored afterwards."""
    before = _current
    with matplotlib.rc_context():
        use_language(lang)
        try:
            yield
        finally:
            use_language(before)


def use_japanese_font() -> str:
    """Let every figure drawn from now on show Japanese text: IPAexGothic (from the ``matplotlib-fontja``
    package, installed by the ``docs`` extra) is registered with matplotlib and put behind its default
    sans-serif font as a fallback, so Latin letters, digits and symbols keep their usual look and
    Japanese characters come from IPAexGothic (matplotlib's own fonts have none: it draws boxes and
    warns "Glyph ... missing from font(s)"). Returns the font's name; raises ConfigError if the package
    is not installed. Use it in a ``matplotlib.rc_context()`` to limit it to some figures."""
    spec = importlib.util.find_spec(_FONTJA_PACKAGE)  # found, not imported: importing it changes rcParams
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("Japanese labels need the matplotlib-fontja package: pip install 'ddpgkit[docs]'")
    path = Path(next(iter(spec.submodule_search_locations))) / _FONTJA_FILE
    if not path.is_file():
        raise ConfigError(f"matplotlib-fontja is installed but {path} is missing; reinstall it")
    if JAPANESE_FONT not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    # matplotlib falls back glyph by glyph along an explicit list of family names (not inside a generic one)
    matplotlib.rcParams["font.family"] = [matplotlib.rcParams["font.sans-serif"][0], JAPANESE_FONT]
    return JAPANESE_FONT
