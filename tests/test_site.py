"""The documentation site: `make docs`'s build (every warning an error), then its pages opened in a real
headless browser (Debian's chromium through selenium): they render, the Japanese tutorial shows Japanese
text, and every figure loads.

Needs the `docs` extra and the packages chromium, chromium-driver and fonts-ipaexfont-gothic (.ci/run
installs them); without the browser the browser part is skipped, except in CI, where it fails."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the site needs the 'docs' extra")
pytest.importorskip("myst_nb", reason="the site needs the 'docs' extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs the 'docs' extra")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
BROWSER, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = pytest.mark.xdist_group("site")  # one build, on one worker


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as `make docs` builds it (the same sphinx-build flags), into a temporary directory."""
    out = tmp_path_factory.mktemp("site")
    p = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-n", "-W", "--keep-going", "-c", "docs", ".", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, "the site's build failed:\n" + p.stderr[-5000:]
    return out


def test_the_build_makes_every_page(site):
    for page in ("index.html", "docs/index.html", "README.html", "README.ja.html", "benchmarks/README.html",
                 "docs/api/index.html", "docs/api/agents.html", "docs/api/config.html",
                 "docs/tutorial/en/04_pendulum.html", "docs/tutorial/ja/04_pendulum.html"):
        assert (site / page).is_file(), page
    assert 'id="ddpgkit.agents.ddpg.DDPG"' in (site / "docs/api/agents.html").read_text(encoding="utf-8")
    assert 'id="ddpgkit.config.ddpg.DDPGConfig"' in (site / "docs/api/config.html").read_text(encoding="utf-8")


def test_japanese_pages_are_served_as_japanese_and_searchable(site):
    for page in ("README.ja.html", "docs/tutorial/ja/01_networks.html", "docs/tutorial/ja/05_seeds_and_beyond.html"):
        assert '<html class="no-js" lang="ja"' in (site / page).read_text(encoding="utf-8"), page
    for page in ("README.html", "docs/tutorial/en/01_networks.html", "docs/index.html"):
        assert '<html class="no-js" lang="en"' in (site / page).read_text(encoding="utf-8"), page
    script = (site / "searchindex.js").read_text(encoding="utf-8")  # Search.setIndex({...})
    terms = json.loads(script[script.index("(") + 1:script.rindex(")")])["terms"]
    # Japanese words are terms of the index (the query is split the same way), not parts of sentence-long tokens
    assert {"フィッティング", "損失", "学習"} <= set(terms)
    assert max(len(t) for t in terms if JAPANESE.search(t)) < 20


def test_the_build_fails_on_a_broken_link(tmp_path):
    """-W turns a broken reference into a failed build (checked on a copy of the site's pages with one
    broken link added, notebooks not executed, to keep it quick)."""
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "conf.py", src / "docs" / "conf.py")
    (src / "docs" / "index.md").write_text("# Home\n\nSee [the missing page](nowhere.md).\n", encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-n", "-W", "--keep-going", "-c", "docs",
                        "-D", "nb_execution_mode=off", ".", str(tmp_path / "out")],
                       cwd=src, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "nowhere" in p.stderr


@pytest.fixture(scope="module")
def browser():
    if BROWSER is None or DRIVER is None:
        message = "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium " \
                  "chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, site, page):
    browser.get((site / page).as_uri())
    return browser.execute_script(
        "return {title: document.title, text: document.body.innerText,"
        " images: Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])};")


def _assert_images_load(state, page):
    assert state["images"], f"{page}: no images"
    broken = [src for src, complete, width in state["images"] if not (complete and width > 0)]
    assert not broken, f"{page}: images that did not load: {broken}"


def test_pages_render_in_a_browser(browser, site):
    browser.get((site / "index.html").as_uri())  # build/docs/index.html leads to the start page
    WebDriverWait(browser, 20).until(lambda b: b.current_url.endswith("/docs/index.html"))
    home = _open(browser, site, "docs/index.html")
    text = home["text"].lower()  # the theme writes the captions in capitals (CSS); innerText follows it
    assert "ddpgkit" in home["title"] and "tutorial" in text and "チュートリアル" in text
    readme = _open(browser, site, "README.html")
    assert "Two commands" in readme["text"]
    _assert_images_load(readme, "README")
    api = _open(browser, site, "docs/api/algo.html")
    assert "td_target" in api["text"] and "soft_update" in api["text"]


def test_the_japanese_tutorial_shows_japanese_text_and_its_figures(browser, site):
    for part in ("01_networks", "02_fitting", "04_pendulum"):
        page = f"docs/tutorial/ja/{part}.html"
        state = _open(browser, site, page)
        assert browser.execute_script("return document.documentElement.lang") == "ja", page
        japanese = JAPANESE.findall(state["text"])
        assert len(japanese) > 200, f"{page}: {len(japanese)} Japanese characters"
        _assert_images_load(state, page)
    # the executed notebook's outputs are on the page: a figure drawn during the build, and printed numbers
    assert any("image/png" in (src or "") or (src or "").endswith(".png") for src, _, _ in state["images"])
    assert "最終評価" in state["text"]
    assert browser.save_screenshot(str(site / "ja_screenshot.png"))  # for a look: build dir's ja_screenshot.png
