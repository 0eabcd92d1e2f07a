"""Japanese pages (issue 28): no line break inside a Japanese sentence. A browser joins the lines of a
paragraph with a space, which Japanese text does not have; so each paragraph of Japanese prose is one line.
Checked in every Markdown file of the repository outside code blocks and math."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JAPANESE = re.compile(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")  # kana, kanji, full-width punctuation
BLOCK_START = re.compile(r"^\s*([#>|]|[-*+] |\d+\. |```|\$\$|:::|<)")  # a heading, list item, table, ... starts anew
PAGES = sorted(p for p in ROOT.glob("**/*.md") if not {".venv", "build", "node_modules"} & set(p.parts))


def prose_pairs(text: str):
    """(line number, line, next line) for each line of prose followed by more of the same paragraph: outside code
    and math blocks, the next line neither blank nor the start of a block (heading, list item, table, ...)."""
    fenced = None  # the fence ("```" or "$$") of the code or math block we are in
    lines = text.splitlines()
    for i, (line, after) in enumerate(zip(lines, lines[1:] + [""]), start=1):
        bare = line.strip()
        fence = next((f for f in ("```", "$$") if bare.startswith(f)), None)
        if fence is not None and not (fence == "$$" and len(bare) > 2 and bare.endswith("$$")):
            fenced = None if fenced == fence else fenced or fence
            continue
        if not (fenced or fence or not bare or not after.strip() or BLOCK_START.match(after)):
            yield i, line, after


def breaks_inside_sentences(text: str) -> list[tuple[int, str]]:
    """(line number, the two lines) for each newline between two Japanese characters of one paragraph."""
    return [(i, f"{line.rstrip()[-12:]}⏎{after.lstrip()[:12]}") for i, line, after in prose_pairs(text)
            if JAPANESE.match(line.rstrip()[-1]) and JAPANESE.match(after.lstrip()[0])]


def continued_paragraphs(text: str) -> list[str]:
    """Lines of Japanese prose continued on the next line (whatever its first character): a Japanese paragraph
    is one line in the source, so a second line is a paragraph broken in two."""
    return [f"{line[-12:]!r} / {after[:12]!r}" for _, line, after in prose_pairs(text) if JAPANESE.search(line)]


def test_the_check_finds_a_break_and_passes_code_and_lists():
    assert breaks_inside_sentences("ニューラル\nネットワーク") == [(1, "ニューラル⏎ネットワーク")]
    assert breaks_inside_sentences("一文目です。\n\n二文目です。") == []
    assert breaks_inside_sentences("項目：\n- 一つ目\n- 二つ目") == []
    assert breaks_inside_sentences("```python\n# 日本語の\n# コメント\n```") == []
    assert breaks_inside_sentences("$$\n損失\n関数\n$$") == []
    assert breaks_inside_sentences("数式 $$ y $$ の後\nの文") == [(1, "式 $$ y $$ の後⏎の文")]
    assert continued_paragraphs("日本語の段落が\nthen English") == ["'日本語の段落が' / 'then English'"]
    assert continued_paragraphs("日本語の段落。\n- 項目\n```\n# 日本語\ncode\n```") == []


def test_no_japanese_page_breaks_a_sentence():
    pages = [p for p in PAGES if JAPANESE.search(p.read_text(encoding="utf-8"))]
    assert any(p.name == "README.ja.md" for p in pages) and len(pages) >= 6
    found = {str(p.relative_to(ROOT)): b for p in pages
             if (b := breaks_inside_sentences(p.read_text(encoding="utf-8")))}
    assert not found, f"line breaks inside Japanese sentences (make each paragraph one line): {found}"
    continued = {str(p.relative_to(ROOT)): c for p in pages
                 if (c := continued_paragraphs(p.read_text(encoding="utf-8")))}
    assert not continued, f"Japanese paragraphs continued on a second line: {continued}"
