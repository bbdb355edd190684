"""The cells against independent references: the LayerNorm cells against their formulas written here from
`F.layer_norm` and plain torch ops, and the default initialiser against torch's own, draw for draw."""

import pytest
import torch
import torch.nn.functional as F

import rnnlab

EPS = 1e-5  # torch's LayerNorm default, the cells' too


def ln(x, p, name):
    """Layer norm over the last dimension with the gains and shifts `ln_{name}_weight`, `ln_{name}_bias`."""
    return F.layer_norm(x, x.shape[-1:], p[f"ln_{name}_weight"], p[f"ln_{name}_bias"], EPS)


def ln_lstm_step(p, x, h, c):
    """gates = LN(W_ih x) + LN(W_hh h); c = f c + i g; h = o tanh(LN(c)) (gate order i, f, g, o)."""
    gates = ln(x @ p["weight_ih"].T, p, "ih") + ln(h @ p["weight_hh"].T, p, "hh")
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(ln(c, p, "c")), c


def ln_gru_step(p, x, h, _c=None):
    """torch's GRU maths (gate order r, z, n) on a = LN(W_ih x) and b = LN(W_hh h)."""
    a_r, a_z, a_n = ln(x @ p["weight_ih"].T, p, "ih").chunk(3, -1)
    b_r, b_z, b_n = ln(h @ p["weight_hh"].T, p, "hh").chunk(3, -1)
    r, z = torch.sigmoid(a_r + b_r), torch.sigmoid(a_z + b_z)
    n = torch.tanh(a_n + r * b_n)
    return (1 - z) * n + z * h, None


CASES = {
    "lstm": (rnnlab.LayerNormLSTMCell, rnnlab.LayerNormLSTM, ln_lstm_step),
    "gru": (rnnlab.LayerNormGRUCell, rnnlab.LayerNormGRU, ln_gru_step),
}


def randomise(module, seed=0):
    """Every parameter random, the LayerNorm gains and shifts too (their defaults 1 and 0 hide mix-ups)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.7)
    return module


def reference_layers(layer, x, lengths, h0, c0, step):
    """The stacked, bidirectional layer by hand: each row stepped over its own valid steps only (the reverse
    direction from its own last step), outputs zero past its length, final states at its last step."""
    T, B, _ = x.shape
    D, L = layer.num_directions, layer.num_layers
    inputs, h_n, c_n = x, [], []
    for k in range(L):
        outs = []
        for d in range(D):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            p = {n[: -len(suffix)]: q for n, q in layer.named_parameters() if n.endswith(suffix)}
            rows, hs, cs = [], [], []
            for b in range(B):
                h, c = h0[k * D + d, b], None if c0 is None else c0[k * D + d, b]
                row = [torch.zeros(layer.hidden_size, dtype=x.dtype)] * T  # zero past the length
                steps = range(int(lengths[b]))
                for t in reversed(steps) if d else steps:
                    h, c = step(p, inputs[t, b], h, c)
                    row[t] = h
                rows.append(torch.stack(row))  # (T, H)
                hs.append(h)
                cs.append(c)
            outs.append(torch.stack(rows, 1))  # (T, B, H)
            h_n.append(torch.stack(hs))
            c_n.append(None if c0 is None else torch.stack(cs))
        inputs = torch.cat(outs, -1)
    return inputs, torch.stack(h_n), None if c0 is None else torch.stack(c_n)


def grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("kind", list(CASES))
def test_layernorm_cell_equals_its_formula_outputs_and_gradients(kind):
    cell_class, _, step = CASES[kind]
    torch.manual_seed(0)
    cell = randomise(cell_class(3, 5).double())
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    c = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    state = (h, c) if kind == "lstm" else (h,)
    new = cell(x, state)
    new_h, new_c = new if kind == "lstm" else (new, None)  # torch's return types: (h, c) or h
    h_ref, c_ref = step(dict(cell.named_parameters()), x, h, c if kind == "lstm" else None)
    assert torch.allclose(new_h, h_ref, rtol=0, atol=1e-12)
    w = torch.randn(4, 5, dtype=torch.float64)
    loss, loss_ref = (new_h * w).sum(), (h_ref * w).sum()
    if kind == "lstm":
        assert torch.allclose(new_c, c_ref, rtol=0, atol=1e-12)
        loss, loss_ref = loss + new_c.pow(2).sum(), loss_ref + c_ref.pow(2).sum()
    wrt = [x, *state, *cell.parameters()]
    names = ["x", "h", "c"][: 1 + len(state)] + [n for n, _ in cell.named_parameters()]
    assert len(names) == len(wrt) and {"ln_ih_weight", "ln_hh_bias"} <= set(names)
    for name, g, g_ref in zip(names, grads(loss, wrt), grads(loss_ref, wrt), strict=True):
        assert torch.allclose(g, g_ref, rtol=0, atol=1e-10), name


@pytest.mark.parametrize("kind", list(CASES))
def test_layernorm_layers_equal_the_formula_stepped_by_hand(kind):
    _, layer_class, step = CASES[kind]
    torch.manual_seed(0)
    layer = randomise(layer_class(3, 4, num_layers=2, bidirectional=True).double())
    T, B = 6, 3
    x = torch.randn(T, B, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    h0 = torch.randn(4, B, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, B, 4, dtype=torch.float64, requires_grad=True) if kind == "lstm" else None
    out, final = layer(x, (h0, c0) if kind == "lstm" else h0, lengths=lengths)
    h_n, c_n = final if kind == "lstm" else (final, None)
    ref_out, ref_h, ref_c = reference_layers(layer, x, lengths, h0, c0, step)
    assert torch.allclose(out, ref_out, rtol=0, atol=1e-12)
    assert torch.allclose(h_n, ref_h, rtol=0, atol=1e-12)
    g = torch.Generator().manual_seed(1)
    w_out, w_h = (
        torch.randn(out.shape, generator=g, dtype=out.dtype),
        torch.randn(h_n.shape, generator=g, dtype=out.dtype),
    )
    loss, loss_ref = (out * w_out).sum() + (h_n * w_h).sum(), (ref_out * w_out).sum() + (ref_h * w_h).sum()
    if kind == "lstm":
        assert torch.allclose(c_n, ref_c, rtol=0, atol=1e-12)
        loss, loss_ref = loss + c_n.pow(2).sum(), loss_ref + ref_c.pow(2).sum()
    names = ["x", "h0", *(["c0"] if kind == "lstm" else []), *(n for n, _ in layer.named_parameters())]
    wrt = [x, h0, *([c0] if kind == "lstm" else []), *layer.parameters()]
    for name, got, want in zip(names, grads(loss, wrt), grads(loss_ref, wrt), strict=True):
        assert torch.allclose(got, want, rtol=0, atol=1e-10), name


# ---------------------------------------------------------------------- the default init, draw for draw


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True}, {"bias": False}])
def test_default_init_is_torchs_under_the_same_seed(name, options):
    torch.manual_seed(7)
    a = getattr(torch.nn, name)(5, 6, **options)
    after_a = torch.rand(3)
    torch.manual_seed(7)
    b = getattr(rnnlab, name)(5, 6, **options)
    after_b = torch.rand(3)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)  # the same parameters, in torch's order (the order of the draws)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert torch.equal(after_a, after_b)  # and no extra draws: what follows is the same too


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
def test_default_cell_init_is_torchs_under_the_same_seed(name):
    torch.manual_seed(11)
    a = getattr(torch.nn, name)(5, 6)
    after_a = torch.rand(3)
    torch.manual_seed(11)
    b = getattr(rnnlab, name)(5, 6)
    after_b = torch.rand(3)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert torch.equal(after_a, after_b)  # and no extra draws: what follows is the same too
