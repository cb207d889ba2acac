"""README stays a front page: short, one line per capability, numbers in docs/benchmarks.md."""

from __future__ import annotations

from tests.support.builders import REPO


def test_readme_is_a_front_page():
    text = (REPO / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) < 120 and len(text) < 9000, (len(lines), len(text))
    cells = [c.strip() for line in lines if line.startswith("|") for c in line.split("|")]
    assert max(len(c) for c in cells) <= 200, max(cells, key=len)
