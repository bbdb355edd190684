"""Plots of a diagnostics history: the heatmap holds log10 of the recorded profiles, every PNG is written."""

import json

import numpy as np
import pytest
import torch
from diagnostics_cases import backward

import rnnlab
from rnnlab.diagnostics import plots


@pytest.fixture(scope="module")
def history():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, 6, 1, cell="lstm", num_layers=2)
    records = []
    for step in (0, 10, 20):
        model.zero_grad()
        with rnnlab.watch(model) as probe:
            backward(model, torch.randn(3, 8, 2))
        records.append({"step": step, **json.loads(probe.report().to_json())})
        with torch.no_grad():
            model.encoder.weight_hh_l0.mul_(1.1)
    return records


def test_heatmap_holds_log10_of_the_profiles(history):
    fig = plots.profile_heatmap(history, layer="encoder.l1")
    (image,) = fig.axes[0].images
    expected = np.log10([r["layers"]["encoder.l1"]["profile_h"] for r in history])
    np.testing.assert_allclose(np.ma.getdata(image.get_array()), expected, rtol=1e-12)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["0", "10", "20"]


def test_heatmap_pads_profiles_of_different_lengths():
    history = [
        {"step": 0, "layers": {"l0": {"profile_h": [1.0, 10.0]}}},
        {"step": 5, "layers": {"l0": {"profile_h": [100.0, 0.0, 1000.0]}}},
    ]
    data = plots.profile_heatmap(history).axes[0].images[0].get_array()
    assert data.shape == (2, 3)
    assert data.mask.tolist() == [[False, False, True], [False, True, False]]  # padding and log10(0) hidden
    assert np.ma.getdata(data)[1, 2] == pytest.approx(3.0)


def test_spectral_radius_lines_follow_training(history):
    fig = plots.spectral_radius_plot(history, layer="encoder.l0")
    lines = [line for line in fig.axes[0].lines if line.get_label() == "encoder.l0 f"]
    (line,) = lines
    expected = [r["layers"]["encoder.l0"]["spectra"]["f"]["spectral_radius"] for r in history]
    np.testing.assert_allclose(line.get_ydata(), expected)
    np.testing.assert_allclose(np.diff(np.log(expected)), np.log(1.1), rtol=1e-5)  # scaled by 1.1 each probe


def test_save_all_writes_four_pngs(history, tmp_path):
    paths = plots.save_all(history, tmp_path / "plots")
    assert sorted(p.name for p in paths) == [
        "grad_flow_heatmap.png",
        "grad_flow_profile.png",
        "saturation.png",
        "spectral_radius.png",
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_round_trips_through_jsonl(history, tmp_path):
    path = tmp_path / "diagnostics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in history))
    assert plots.read_history(path) == history
    image = plots.figure_to_array(plots.saturation_bars(history[-1]))
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.std() > 0


def test_unknown_layer_and_empty_history_raise(history):
    with pytest.raises(ValueError, match="no layer 'encoder.l9'"):
        plots.profile_plot(history[0], layer="encoder.l9")
    with pytest.raises(ValueError, match="empty"):
        plots.profile_heatmap([])
