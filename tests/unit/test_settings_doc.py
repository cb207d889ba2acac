"""docs/settings.md lists every setting, and nothing that is not one: checked against the
``Settings`` fields, so a new field cannot ship undocumented."""

from __future__ import annotations

import re

from lookalike.config import Settings
from tests.support.builders import REPO

#: Variables the page documents that are not ``LOOKALIKE_*`` settings (read by libraries).
NOT_SETTINGS = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}


def documented() -> set[str]:
    """Every variable in the first column of the page's table; ``A_B_C` / `_D`` is shorthand
    for ``A_B_C`` and ``A_B_D`` (the suffix replaces the first name's last word)."""
    names: set[str] = set()
    for line in (REPO / "docs" / "settings.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        full = re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)
        names |= set(full)
        for suffix in re.findall(r"`(_[A-Z0-9_]+)`", cell):
            names.add(full[0].rsplit("_", 1)[0] + suffix if full[0].count("_") > 1 else suffix)
    return names


def test_every_setting_is_documented_and_every_documented_variable_exists():
    fields = {f"LOOKALIKE_{name.upper()}" for name in Settings.model_fields}
    docs = documented() - NOT_SETTINGS
    assert sorted(fields - docs) == [], "settings missing from docs/settings.md"
    assert sorted(docs - fields) == [], "docs/settings.md names variables that are not settings"
