"""The OpenCV line chart behind analyze's emotions.png."""

from __future__ import annotations

import cv2
import numpy as np

from edge_fer import plotimg


def test_ticks_are_one_two_five_steps_covering_the_span():
    assert plotimg.nice_ticks(9.176).tolist() == [0, 2, 4, 6, 8]
    assert plotimg.nice_ticks(3600)[1] == 500 and plotimg.nice_ticks(3600)[-1] == 3500
    t = plotimg.nice_ticks(0.37)
    assert np.allclose(np.diff(t), 0.05) and t[-1] <= 0.37 + 1e-9


def test_segments_bridge_short_gaps_and_break_at_long_ones():
    xs = np.arange(10.0)
    ys = np.array([1, 1, np.nan, 1, 1, np.nan, np.nan, np.nan, 1, np.nan])
    runs = plotimg._segments(xs, ys, bridge=2)
    assert [r[:, 0].tolist() for r in runs] == [[0, 1, 3, 4], [8]]
    assert [r[:, 0].tolist() for r in plotimg._segments(xs, ys, bridge=0)] == [[0, 1], [3, 4], [8]]
    assert plotimg._segments(xs, np.full(10, np.nan)) == []


def test_chart_draws_each_series_in_its_colour_in_its_panel():
    x = np.linspace(0, 10, 50)
    high = np.full((50, 2), np.nan)
    high[:, 0] = 0.9  # series 0 near the top of panel 0; series 1 absent there
    low = np.full((50, 2), np.nan)
    low[::7, 1] = 0.1  # isolated points of series 1 (gaps of 6 > bridge) near the bottom of panel 1
    png = plotimg.line_chart(x, [high, low], ["a", "b"], ["s0", "s1"], 10.0, "t (s)", bridge=2)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert img.shape == (plotimg.TOP + 2 * plotimg.PANEL + plotimg.GAP + plotimg.BOTTOM, plotimg.WIDTH, 3)

    def hits(colour, k, frac):
        top = plotimg.TOP + k * (plotimg.PANEL + plotimg.GAP)
        y = int(top + (1 - frac) * plotimg.PANEL)
        band = img[y - 3 : y + 4, plotimg.LEFT + 2 : plotimg.WIDTH - plotimg.RIGHT - 2]
        return int((np.abs(band - np.array(colour)).sum(axis=2) < 60).sum())

    c0, c1 = plotimg.PALETTE[0], plotimg.PALETTE[1]
    assert hits(c0, 0, 0.9) > 500 and hits(c1, 0, 0.9) == 0  # a line across panel 0
    assert 8 <= hits(c1, 1, 0.1) < 300 and hits(c0, 1, 0.1) == 0  # dots in panel 1, no line


def test_an_empty_chart_says_so():
    png = plotimg.line_chart(np.arange(3.0), [], [], ["s0"], 1.0, "t", "no face tracked")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    inside = img[
        plotimg.TOP + 2 : plotimg.TOP + plotimg.PANEL - 2, plotimg.LEFT + 2 : plotimg.WIDTH - plotimg.RIGHT - 2
    ]
    assert (inside < 128).sum() > 50  # the text
