"""Every section of the English operator docs has its Chinese counterpart, in the same order.

Convention: a heading of a Chinese document names the English heading it translates in an HTML
comment at its end, e.g. ``## 线损 <!-- en: Line loss -->`` (invisible when rendered).  The test
reads the headings of both files (outside fenced code blocks) and requires the Chinese file's
(level, English name) list to equal the English file's (level, heading) list exactly, so a
section added, renamed, moved or dropped in English fails until the translation follows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {
    "README.md": "README.zh-CN.md",
    **{
        f"docs/{name}.md": f"docs/zh-CN/{name}.md"
        for name in (
            "web-console",
            "headend-operations",
            "prepayment",
            "analytics",
            "install-gateway",
        )
    },
}
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
ANCHOR = re.compile(r"^(.*?)\s*<!--\s*en:\s*(.*?)\s*-->$")


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of each Markdown heading outside fenced code blocks."""
    out: list[tuple[int, str]] = []
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced and (m := HEADING.match(line)):
            out.append((len(m.group(1)), m.group(2)))
    return out


def english_names(path: Path) -> list[tuple[int, str]]:
    """(level, English heading) of each heading of a Chinese document (its anchor comment)."""
    out = []
    for level, text in headings(path):
        m = ANCHOR.match(text)
        assert m, f"{path.relative_to(ROOT)}: heading {text!r} names no English heading"
        assert m.group(1) and not m.group(1).isascii(), f"{path}: {text!r} is not translated"
        out.append((level, m.group(2)))
    return out


@pytest.mark.parametrize("english", sorted(PAIRS))
def test_every_english_section_has_its_chinese_counterpart(english: str) -> None:
    chinese = ROOT / PAIRS[english]
    assert chinese.exists(), f"{PAIRS[english]} is missing (the Chinese version of {english})"
    assert english_names(chinese) == headings(ROOT / english)


def test_the_convention_catches_a_missing_and_a_renamed_section(tmp_path: Path) -> None:
    en, zh = tmp_path / "en.md", tmp_path / "zh.md"
    en.write_text("# Guide\n\n## Install\n\n```sh\n# not a heading\n```\n\n## Upgrade\n")
    zh.write_text("# 指南 <!-- en: Guide -->\n\n## 安装 <!-- en: Install -->\n")
    assert english_names(zh) != headings(en)  # 'Upgrade' has no counterpart
    zh.write_text(zh.read_text() + "\n## 升级 <!-- en: Upgrading -->\n")
    assert english_names(zh) != headings(en)  # renamed in English only
    zh.write_text(zh.read_text().replace("Upgrading", "Upgrade"))
    assert english_names(zh) == headings(en) == [(1, "Guide"), (2, "Install"), (2, "Upgrade")]
