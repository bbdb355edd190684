"""Recurrent spectra per gate block and saturation shares, on weights and activations of known answer."""

import math

import pytest
import torch

import rnnlab
from rnnlab.diagnostics import saturation, spectra


def test_every_gate_block_of_an_orthogonal_lstm_has_the_radius_asked_for():
    layer = rnnlab.LSTM(
        3, 16, num_layers=2, bidirectional=True, init="orthogonal", spectral_radius=0.8, dtype=torch.float64
    )
    result = rnnlab.diagnostics.recurrent_spectra(layer)
    assert set(result) == {"l0", "l0_reverse", "l1", "l1_reverse"}
    for gates in result.values():
        assert set(gates) == {"i", "f", "g", "o"}
        for v in gates.values():  # 0.8 · orthogonal: every eigenvalue and singular value has modulus 0.8
            assert v["spectral_radius"] == pytest.approx(0.8, rel=1e-9)
            assert v["max_singular"] == pytest.approx(0.8, rel=1e-9)


def test_large_blocks_are_estimated_within_a_percent():
    torch.manual_seed(0)
    for n in (150, 256):
        w = torch.randn(3, n, n, dtype=torch.float64) / n**0.5
        rho = torch.linalg.eigvals(w).abs().amax(-1)
        sigma = torch.linalg.matrix_norm(w, ord=2)
        torch.testing.assert_close(spectra.gelfand_radius(w), rho, rtol=0.01, atol=0)
        sigma_estimate = spectra.krylov_max_singular(w)
        assert bool((sigma_estimate <= sigma * (1 + 1e-9)).all())  # Rayleigh–Ritz: from below
        torch.testing.assert_close(sigma_estimate, sigma, rtol=1e-6, atol=0)
    q = torch.linalg.qr(torch.randn(200, 200, dtype=torch.float64))[0]
    assert spectra.radius(0.9 * q) == pytest.approx(0.9, rel=1e-9)  # orthogonal: ‖Q^k V‖ = ‖V‖ exactly
    assert spectra.max_singular(0.9 * q) == pytest.approx(0.9, rel=1e-9)
    assert spectra.radius(torch.zeros(200, 200)) == 0.0


def test_rank_deficient_blocks_keep_the_krylov_space_orthonormal():
    u, v = torch.randn(256, 2, dtype=torch.float64), torch.randn(2, 256, dtype=torch.float64)
    w = u @ v  # rank 2: the Krylov space is exhausted after two vectors
    expected = torch.linalg.matrix_norm(w, ord=2)
    torch.testing.assert_close(spectra.krylov_max_singular(w[None])[0], expected, rtol=1e-9, atol=0)


def test_indrnn_vector_weights_are_a_diagonal():
    layer = rnnlab.IndRNN(2, 3, dtype=torch.float64)
    with torch.no_grad():
        layer.weight_hh_l0.copy_(torch.tensor([0.5, -1.2, 0.3], dtype=torch.float64))
    assert rnnlab.diagnostics.recurrent_spectra(layer)["l0"] == {
        "h": {"spectral_radius": 1.2, "max_singular": 1.2}
    }


def test_non_finite_weights_give_nan_spectra():
    layer = rnnlab.GRU(2, 3)
    with torch.no_grad():
        layer.weight_hh_l0[0, 0] = math.inf
    assert all(math.isnan(v["spectral_radius"]) for v in spectra.recurrent_spectra(layer)["l0"].values())


def test_saturation_shares_count_the_tails():
    # tanh unit "h": 3 of 8 beyond 0.99; sigmoid "r": 1 low and 2 high of 8; keep gate "z": 0.1, 0.2, ..., 0.8
    h = torch.tensor([0.995, -0.999, 1.0, 0.5, 0.0, -0.5, 0.98, 0.2]).reshape(2, 2, 2)
    r = torch.tensor([0.005, 0.5, 0.995, 0.999, 0.5, 0.5, 0.5, 0.011]).reshape(2, 2, 2)
    z = torch.arange(1, 9, dtype=torch.float32).reshape(2, 2, 2) / 10
    out = saturation.measure({"h": h, "r": r, "z": z}, None, ("h",), ("r", "z"), "z")
    assert float(out["tanh"]) == pytest.approx(3 / 8)
    assert float(out["gates"]) == pytest.approx(3 / 8)  # r only: the keep gate is reported apart
    assert float(out["per_gate"]["r"]["low"]) == pytest.approx(1 / 8)
    assert float(out["per_gate"]["r"]["high"]) == pytest.approx(2 / 8)
    keep = out["keep_gate"]
    assert keep["name"] == "z" and float(keep["mean"]) == pytest.approx(0.45)
    assert float(keep["quantiles"]["q50"]) == pytest.approx(0.45)
    assert float(keep["memory_steps"]) == pytest.approx(-1 / math.log(0.45), rel=1e-5)
    assert float(keep["histogram"].sum()) == pytest.approx(1.0)


def test_masked_steps_are_left_out():
    h = torch.tensor([[[0.999]], [[0.1]]])  # (T=2, B=1, H=1): saturated at step 0 only
    mask = torch.tensor([[[False]], [[True]]])
    assert float(saturation.measure({"h": h}, mask, ("h",), (), None)["tanh"]) == 0.0
    assert float(saturation.measure({"h": h}, None, ("h",), (), None)["tanh"]) == 0.5


def test_a_keep_gate_fully_open_keeps_forever():
    z = torch.ones(3, 2, 4)
    keep = saturation.measure({"z": z}, None, (), ("z",), "z")["keep_gate"]
    assert math.isinf(float(keep["memory_steps"]))


def test_mid_sized_blocks_get_an_exact_largest_singular_value():
    torch.manual_seed(0)
    w = torch.randn(4, 64, 64, dtype=torch.float64) / 8
    torch.testing.assert_close(spectra.gram_max_singular(w), torch.linalg.matrix_norm(w, ord=2))
    layer = rnnlab.GRU(3, 64, dtype=torch.float64)
    blocks = spectra.recurrent_spectra(layer)["l0"]
    for gate, block in zip("rzn", layer.weight_hh_l0.detach().chunk(3), strict=True):
        assert blocks[gate]["max_singular"] == pytest.approx(float(torch.linalg.matrix_norm(block, ord=2)))
        rho = float(torch.linalg.eigvals(block).abs().max())
        assert blocks[gate]["spectral_radius"] == pytest.approx(rho, rel=0.01)
