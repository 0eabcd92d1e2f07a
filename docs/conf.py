"""The documentation site: the repository's own Markdown (README, README.ja.md, benchmarks/README.md,
docs/), the tutorial's notebooks executed as they are built (myst-nb), and the API reference from the
docstrings (autodoc). Built by ``make docs`` with every warning an error: a broken link, a missing
image, a reference that resolves to nothing or a notebook cell that fails stops the build.

    sphinx-build -W --keep-going -n -c docs . build/docs   (the source directory is the repository)
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("MPLBACKEND", "Agg")

import ddpgkit  # noqa: E402

project = "ddpgkit"
author = "the ddpgkit developers"
release = version = ddpgkit.__version__
root_doc = "docs/index"
language = "en"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]

# the repository is the source directory; these are its pages
include_patterns = ["README.md", "README.ja.md", "benchmarks/README.md", "docs/**"]
exclude_patterns = ["build/**", "docs/conf.py", "docs/_extra/**", "**/.ipynb_checkpoints"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

# the tutorial runs as it is built, each notebook in a fresh temporary directory; an error fails the build
nb_execution_mode = "force"
nb_execution_in_temp = True
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": False}
autodoc_inherit_docstrings = False  # Gymnasium's own docstrings of the test envs' reset/step are not ours
napoleon_google_docstring = True

# without network access there are no intersphinx inventories: names of other libraries are left as text
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|np|numpy|gym|gymnasium|pathlib|collections|typing|typing_extensions|matplotlib|plt|"
               r"safetensors|ray|typer|rich|dataclasses|enum|abc|os|io|csv|json|argparse|datetime|concurrent|re)\b.*"),
    (r"py:.*", r"(Path|Any|Callable|Iterable|Iterator|Sequence|Mapping|Protocol|NamedTuple|TypeVar|Self|"
               r"Literal|Optional|Union)"),
    (r"py:class", r"(Tensor|Generator|Module|Env|ndarray|Figure|Axes|optim\..*|nn\..*)"),
    (r"py:class", r"'.*"),  # a dataclass's generated __init__ carries its annotations as strings
    (r"py:.*", r"(int|float|str|bool|bytes|dict|list|tuple|set|None|object|type|Exception|ValueError|"
               r"RuntimeError|KeyboardInterrupt|OSError|UserWarning)"),
]

html_theme = "furo"
html_extra_path = ["_extra"]  # build/docs/index.html: a pointer to the start page, docs/index.html
html_title = f"ddpgkit {release}"
# The site is English with Japanese pages: those are served with lang="ja" (_page_language below), so that a
# browser draws their kanji with Japanese glyph shapes and reads them as Japanese. The search index splits
# words with Sphinx's Japanese splitter, which cuts Japanese text into words (the English one keeps a whole
# Japanese sentence as one "word", so no Japanese term is found) and English at spaces and punctuation as the
# English one does, without its stemming ("trains" does not find "train").
html_search_language = "ja"

#: The pages written in Japanese (document names, without the .md).
JAPANESE_PAGES = re.compile(r"^(README\.ja|docs/tutorial/ja/.*)$")


def _root_names(app, env, node, contnode):
    """``ddpgkit.DDPG`` (the package root's re-export, as docstrings and users write it) resolves to the
    page of the module that defines it (``ddpgkit.agents.ddpg.DDPG``), from the root's own export table."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("ddpgkit."):
        return None
    name, _, rest = target[len("ddpgkit."):].partition(".")
    module = ddpgkit._EXPORTS.get(name)
    if module is None:
        return None
    node["reftarget"] = f"ddpgkit.{module}.{name}" + (f".{rest}" if rest else "")
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], node["reftarget"],
                                             node, contnode)


def _page_language(app, pagename, templatename, context, doctree):
    """lang="ja" on the <html> of the Japanese pages (the theme writes ``language`` there)."""
    if JAPANESE_PAGES.match(pagename):
        context["language"] = "ja"


def setup(app):
    app.connect("missing-reference", _root_names)
    app.connect("html-page-context", _page_language)
