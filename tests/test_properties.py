"""Property tests over random shapes and lengths: both paths equal torch, masked outputs are zero."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab

KINDS = {
    "lstm": (rnnlab.LSTM, torch.nn.LSTM),
    "gru": (rnnlab.GRU, torch.nn.GRU),
    "rnn": (rnnlab.RNN, torch.nn.RNN),
}


@st.composite
def problems(draw):
    T = draw(st.integers(1, 7))
    B = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    return {
        "kind": draw(st.sampled_from(sorted(KINDS))),
        "T": T,
        "B": B,
        "I": draw(st.integers(1, 5)),
        "H": draw(st.integers(1, 5)),
        "layers": draw(st.integers(1, 2)),
        "bidirectional": draw(st.booleans()),
        "lengths": torch.tensor(lengths),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=60, deadline=None)
@given(problems(), st.sampled_from(["fused", "unrolled"]))
def test_random_problems_equal_torch(p, execution):
    ours_cls, theirs_cls = KINDS[p["kind"]]
    torch.manual_seed(p["seed"])
    kwargs = {"num_layers": p["layers"], "bidirectional": p["bidirectional"]}
    theirs = theirs_cls(p["I"], p["H"], **kwargs).double()
    ours = ours_cls(p["I"], p["H"], execution=execution, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(p["T"], p["B"], p["I"], dtype=torch.float64)
    out, state = ours(x, lengths=p["lengths"])
    ref_packed, ref_state = theirs(pack_padded_sequence(x, p["lengths"], enforce_sorted=False))
    ref, _ = pad_packed_sequence(ref_packed, total_length=p["T"])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    h = state[0] if isinstance(state, tuple) else state
    h_ref = ref_state[0] if isinstance(ref_state, tuple) else ref_state
    torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-10)
    assert out.shape == (p["T"], p["B"], p["H"] * (2 if p["bidirectional"] else 1))
    past_end = torch.arange(p["T"])[:, None] >= p["lengths"]
    assert torch.all(out[past_end] == 0)


@settings(max_examples=25, deadline=None)
@given(problems(), st.sampled_from(sorted(rnnlab.cells.CELLS)))
def test_any_cell_masks_the_padding(p, cell):
    """Appending garbage after a sequence's end never changes its outputs or final state."""
    torch.manual_seed(p["seed"])
    layer = rnnlab.Recurrent(rnnlab.cell_type(cell), p["I"], p["H"], num_layers=p["layers"]).double()
    x = torch.randn(p["T"], p["B"], p["I"], dtype=torch.float64)
    noisy = x.clone()
    past_end = torch.arange(p["T"])[:, None] >= p["lengths"]
    noisy[past_end] = 1e3 * torch.randn_like(noisy[past_end])
    a, sa = layer(x, lengths=p["lengths"])
    b, sb = layer(noisy, lengths=p["lengths"])
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for u, v in zip(
        sa if isinstance(sa, tuple) else (sa,), sb if isinstance(sb, tuple) else (sb,), strict=True
    ):
        torch.testing.assert_close(u, v, rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(problems(), st.sampled_from(["fused", "unrolled"]))
def test_nan_in_the_padding_never_reaches_outputs_or_gradients(p, execution):
    ours_cls, _ = KINDS[p["kind"]]
    torch.manual_seed(p["seed"])
    layer = ours_cls(
        p["I"], p["H"], num_layers=p["layers"], bidirectional=p["bidirectional"], execution=execution
    )
    x = torch.randn(p["T"], p["B"], p["I"])
    x[torch.arange(p["T"])[:, None] >= p["lengths"]] = float("nan")
    x.requires_grad_()
    out, state = layer(x, lengths=p["lengths"])
    (out.sum() + (state[0] if isinstance(state, tuple) else state).sum()).backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(q.grad).all() for q in layer.parameters())
