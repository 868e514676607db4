"""The charts' categorical colours (web/charts.js) stay apart for every viewer: each pair differs
by at least MIN_DELTA_E CIEDE2000 units in normal vision and in simulated protanopia,
deuteranopia and tritanopia (the old palette had pairs 1 to 5 units apart), and the marks'
outline keeps even the pale ones visible on white."""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

import pytest

coloraide = pytest.importorskip("coloraide", reason="the palette test needs coloraide (the dev extra)")
Color = coloraide.Color

CHARTS = Path(__file__).resolve().parents[1] / "src" / "listenloop" / "web" / "charts.js"
VISIONS = (None, "protan", "deutan", "tritan")
MIN_DELTA_E = 10.0


def _constant(name: str) -> list[str]:
    """The hex colours of `export const NAME = ...;` in charts.js."""
    match = re.search(rf"export const {name} = (.*?);", CHARTS.read_text(), re.S)
    assert match, f"charts.js has no {name}"
    return re.findall(r'"(#[0-9a-fA-F]{6})"', match.group(1))


def _seen(hex_colour: str, vision: str | None) -> object:
    colour = Color(hex_colour)
    return colour if vision is None else colour.filter(vision)


def test_every_pair_of_categories_is_distinct_for_every_vision() -> None:
    palette = _constant("PALETTE") + _constant("NO_CATEGORY")
    assert len(palette) == 11 and len(set(palette)) == 11, palette  # ten categories and "none"
    for vision in VISIONS:
        worst = min(
            (_seen(a, vision).delta_e(_seen(b, vision), method="2000"), a, b)
            for a, b in combinations(palette, 2)
        )
        assert worst[0] >= MIN_DELTA_E, (
            f"{worst[1]} and {worst[2]} differ by {worst[0]:.1f} for {vision or 'normal'} vision"
        )


def test_the_marks_outline_stands_out_on_white() -> None:
    (stroke,) = _constant("MARK_STROKE")
    assert Color(stroke).contrast("white", method="wcag21") >= 3.0
