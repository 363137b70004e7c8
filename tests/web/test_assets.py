"""Translations cover every key the templates use, in both languages; no asset comes from afar."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headend.commands.states import State
from headend.web import i18n
from protocols.model import EventType
from protocols.uplink import CommandAction

WEB = Path(i18n.__file__).parent
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
RULES = (
    "pause", "keep_power", "window", "window.holiday", "window.extreme_weather", "window.weekday",
    "window.hours", "hourly_limit.area", "hourly_limit.fleet", "supervisor_approval",
)  # fmt: skip


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in TEMPLATES:
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r"\bt\('([a-z_.0-9]+)'", text))
        keys |= set(re.findall(r"what='([a-z_.]+)'", text))
    dynamic = {k for k in keys if k.endswith(".")}
    keys -= dynamic
    keys |= {f"state.{s}" for s in State}
    keys |= {f"action.{a}" for a in CommandAction}
    keys |= {f"event.{e}" for e in EventType}
    keys |= {f"rule.{r}" for r in RULES}
    keys |= {f"role.{r}" for r in ("viewer", "operator", "supervisor", "admin")}
    return keys


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_key_is_translated(lang: str) -> None:
    missing = sorted(used_keys() - set(i18n.catalogue(lang)))
    assert not missing, f"{lang}.json lacks {missing}"


def test_the_catalogues_have_the_same_keys_and_fields() -> None:
    en, zh = i18n.catalogue("en"), i18n.catalogue("zh")
    assert set(en) == set(zh)
    fields = re.compile(r"\{(\w+)\}")
    for key in en:
        assert set(fields.findall(en[key])) == set(fields.findall(zh[key])), key


def test_nothing_is_loaded_from_another_site() -> None:
    own = [*TEMPLATES, WEB / "static" / "app.js", WEB / "static" / "app.css"]
    for path in own:
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", path.read_text()), path
    vendor = {p.name for p in (WEB / "static" / "vendor").iterdir()}
    assert {"htmx-2.0.11.min.js", "htmx-LICENSE.txt", "uPlot-1.6.32.iife.min.js"} <= vendor
    assert "uPlot-LICENSE.txt" in vendor


def test_unknown_keys_show_themselves_and_bad_fields_do_not_raise() -> None:
    t = i18n.translator("zh")
    assert t("no.such.key") == "no.such.key"
    assert t("area.title", wrong=1) == i18n.catalogue("zh")["area.title"]
