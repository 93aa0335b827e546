"""The death-time histograms (hf_relrep.utils.plotting)."""

import io

import numpy as np
import pytest
import torch

from hf_relrep.errors import TopologyError
from hf_relrep.topology import death_times_by_class
from hf_relrep.utils.plotting import plot_death_time_histograms


LINE = torch.tensor([[0.0], [1.0], [3.0], [10.0], [10.5], [100.0]])
LINE_LABELS = torch.tensor([0, 0, 0, 1, 1, 2])


def test_plot_writes_a_png_with_one_panel_per_class(tmp_path):
    pytest.importorskip("matplotlib")  # an optional dependency
    before = death_times_by_class(LINE, LINE_LABELS)
    after = {0: torch.tensor([0.9, 1.1]), 1: [1.0], 3: np.array([0.5, 0.7])}
    path = tmp_path / "deaths.png"
    figure = plot_death_time_histograms(before, after, path, beta=1.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["class 0", "class 1", "class 3"]


def test_plot_without_after_returns_a_figure_that_renders():
    pytest.importorskip("matplotlib")  # an optional dependency
    figure = plot_death_time_histograms({0: torch.tensor([1.0, 2.0])})
    assert [ax.get_title() for ax in figure.axes] == ["class 0"]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_plot_rejects_empty_input():
    pytest.importorskip("matplotlib")  # an optional dependency
    with pytest.raises(TopologyError, match="death_times_by_class"):
        plot_death_time_histograms({})
