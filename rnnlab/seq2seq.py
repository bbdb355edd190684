"""An encoder-decoder over rnnlab's recurrent layers, with attention: sequence to sequence.

    model = rnnlab.Seq2Seq(src_vocab=40, tgt_vocab=60, hidden_size=128, cell="lstm", attention="luong")
    logits = model(src, src_lengths, tgt_in)               # (B, T, tgt_vocab), teacher forced
    ids = model.greedy(src, src_lengths)                     # (B, <= max_length) decoded ids, EOS-ended
    ids = model.beam(src, src_lengths, width=5)

The encoder embeds the source ids (0 is the padding) and reads them with any rnnlab cell (bidirectional
allowed; each sequence to its own length). The decoder starts from the encoder's final state (each layer's
directions joined and projected, `tanh(W [h_fwd; h_bwd])`, the cell state too for an LSTM), reads the
previous target token (BOS = 1 first) and predicts the next, ending with EOS = 2. Attention over the
encoder's outputs, masked past each source's length:

    none       the decoder's state alone: everything about the source must pass through one vector
    luong      after the step (Luong et al. 2015, "general"): a_tj = softmax_j(s_t W h_j),
               c_t = sum_j a_tj h_j, output tanh(W_c [c_t; s_t]); teacher forced, the target runs in one call
    bahdanau   before the step (Bahdanau et al. 2015, additive): a_tj = softmax_j(v tanh(W s_{t-1} + U h_j)),
               the context joins the input of step t; stepped one token at a time

`teacher_forcing` < 1 feeds the model its own previous prediction with probability 1 - ratio at each step
(scheduled sampling); decoding (greedy, beam) always does. `attention_maps` are kept on the module after a
forward (`last_attention`, (B, T, S)) for the report's figures.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells import cell_type
from rnnlab.layers import Recurrent

PAD, BOS, EOS = 0, 1, 2
Attention = Literal["none", "luong", "bahdanau"]
ATTENTIONS = ("none", "luong", "bahdanau")


class Seq2Seq(nn.Module):
    """Encoder-decoder with optional attention (see the module docstring).

    Args:
        src_vocab, tgt_vocab: ids of the source (0: padding) and target vocabularies (0 padding, 1 BOS,
            2 EOS).
        hidden_size: units of the encoder (per direction) and of the decoder.
        cell: any rnnlab cell by name, or a Cell class, for both parts (`decoder_cell` for another one).
        attention: "none", "luong" or "bahdanau".
        embedding_dim: size of the token embeddings (default: hidden_size).
        num_layers: layers of the encoder and of the decoder.
        bidirectional: a bidirectional encoder.
        dropout: on the embeddings and between layers.
        max_length: the most tokens decoding produces (EOS included).
        **layer_options: init, forget_bias, chrono, ... for both recurrent layers, as `rnnlab.Recurrent`.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        hidden_size: int = 128,
        cell: Any = "lstm",
        attention: Attention = "luong",
        embedding_dim: int | None = None,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        max_length: int = 100,
        decoder_cell: Any = None,
        **layer_options: Any,
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        if tgt_vocab < 4 or src_vocab < 2:
            raise ValueError("tgt_vocab needs PAD, BOS, EOS and a token; src_vocab PAD and a token")
        E, H = embedding_dim or hidden_size, hidden_size
        self.attention, self.max_length, self.dropout = attention, max_length, float(dropout)
        self.src_vocab, self.tgt_vocab, self.hidden_size, self.num_layers = (
            src_vocab,
            tgt_vocab,
            H,
            num_layers,
        )
        self.src_embedding = nn.Embedding(src_vocab, E, padding_idx=PAD)
        self.tgt_embedding = nn.Embedding(tgt_vocab, E, padding_idx=PAD)
        layer_dropout = dropout if num_layers > 1 else 0.0
        self.encoder = Recurrent(
            cell_type(cell),
            E,
            H,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=True,
            dropout=layer_dropout,
            **layer_options,
        )
        D = self.encoder.num_directions
        feed = D * H if attention == "bahdanau" else 0  # the context joins the decoder's input
        self.decoder = Recurrent(
            cell_type(decoder_cell or cell),
            E + feed,
            H,
            num_layers=num_layers,
            batch_first=True,
            dropout=layer_dropout,
            **layer_options,
        )
        self.bridge = nn.Linear(D * H, H)  # each layer's final state in both directions -> the decoder's
        if attention == "luong":
            self.score = nn.Linear(D * H, H, bias=False)  # s_t W h_j
            self.combine = nn.Linear(D * H + H, H)  # tanh(W_c [c_t; s_t])
        elif attention == "bahdanau":
            self.keys = nn.Linear(D * H, H, bias=False)  # U h_j
            self.query = nn.Linear(H, H)  # W s_{t-1}
            self.energy = nn.Linear(H, 1, bias=False)  # v
        self.out = nn.Linear(H + (D * H if attention == "bahdanau" else 0), tgt_vocab)
        self.last_attention: Tensor | None = None
        self.cell_name = cell if isinstance(cell, str) else None
        self.embedding_dim = embedding_dim

    # --------------------------------------------------------------------------------------------- parts

    def encode(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Any, Tensor]:
        """Encoder outputs (B, S, D*H), the decoder's initial state, and the source mask (B, S) (True: a
        real token)."""
        x = F.dropout(self.src_embedding(src), self.dropout, self.training)
        memory, final = self.encoder(x, lengths=lengths.cpu())
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < lengths.to(src.device)[:, None]
        return memory, self._bridge(final), mask

    def _bridge(self, final: Any) -> Any:
        """(L*D, B, H) per state component -> (L, B, H): each layer's directions joined and projected."""
        D, L = self.encoder.num_directions, self.num_layers

        def one(h: Tensor) -> Tensor:
            joined = h.view(L, D, h.shape[1], h.shape[2]).permute(0, 2, 1, 3).reshape(L, h.shape[1], -1)
            return torch.tanh(self.bridge(joined))

        return tuple(one(h) for h in final) if isinstance(final, tuple) else one(final)

    def _luong(self, s: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Outputs tanh(W_c [c_t; s_t]) (B, T, H) and weights (B, T, S) for decoder states s (B, T, H)."""
        scores = torch.bmm(s, self.score(memory).transpose(1, 2))  # (B, T, S)
        weights = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)
        context = torch.bmm(weights, memory)  # (B, T, D*H)
        return torch.tanh(self.combine(torch.cat([context, s], dim=-1))), weights

    def _bahdanau(self, s: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Context (B, D*H) and weights (B, S) for the previous top-layer state s (B, H)."""
        energy = self.energy(torch.tanh(keys + self.query(s)[:, None, :])).squeeze(-1)  # (B, S)
        weights = torch.softmax(energy.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.bmm(weights[:, None, :], memory).squeeze(1), weights

    def _keep(self, maps: list[Tensor | None]) -> None:
        """The attention weights of the steps just decoded, (B, T, S), as `last_attention`."""
        kept = [m for m in maps if m is not None]
        if kept:
            self.last_attention = torch.stack(kept, dim=1)

    @staticmethod
    def _top(state: Any) -> Tensor:
        h = state[0] if isinstance(state, tuple) else state
        return h[-1]  # (B, H): the top layer's

    # ------------------------------------------------------------------------------------------ forward

    def forward(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0
    ) -> Tensor:
        """Logits (B, T, tgt_vocab) of each next target token, given the previous ones `tgt_in` (B, T)
        (BOS first); with `teacher_forcing` < 1 (training), each step's input is the model's own previous
        prediction with probability 1 - teacher_forcing."""
        memory, state, mask = self.encode(src, src_lengths)
        if self.attention != "bahdanau" and teacher_forcing >= 1.0:  # the whole target in one call
            x = F.dropout(self.tgt_embedding(tgt_in), self.dropout, self.training)
            s, _ = self.decoder(x, state)
            if self.attention == "luong":
                s, self.last_attention = self._luong(s, memory, mask)
            return self.out(s)
        return self._steps(memory, state, mask, tgt_in, teacher_forcing)[0]

    def _steps(
        self,
        memory: Tensor,
        state: Any,
        mask: Tensor,
        tgt_in: Tensor | None,
        teacher_forcing: float = 1.0,
        steps: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One token at a time: logits (B, T, V) and the tokens fed (B, T) (BOS first); with `tgt_in`,
        teacher forced at `teacher_forcing`, else greedy for `steps`."""
        B = memory.shape[0]
        T = tgt_in.shape[1] if tgt_in is not None else (steps or self.max_length)
        keys = self.keys(memory) if self.attention == "bahdanau" else None
        token = torch.full((B,), BOS, dtype=torch.long, device=memory.device)
        logits, fed, maps = [], [], []
        for t in range(T):
            if tgt_in is not None and (teacher_forcing >= 1.0 or t == 0 or torch.rand(()) < teacher_forcing):
                token = tgt_in[:, t]
            fed.append(token)
            y, state, weights = self.step(token, state, memory, keys, mask)
            logits.append(y)
            maps.append(weights)
            token = _writable(y).argmax(-1)
        self._keep(maps)
        return torch.stack(logits, dim=1), torch.stack(fed, dim=1)

    def step(
        self, token: Tensor, state: Any, memory: Tensor, keys: Tensor | None, mask: Tensor
    ) -> tuple[Tensor, Any, Tensor | None]:
        """One decoding step from the previous token (B,): logits (B, V), the new state, the attention
        weights (B, S) (None without attention)."""
        x = F.dropout(self.tgt_embedding(token), self.dropout, self.training)[:, None, :]  # (B, 1, E)
        weights = None
        if self.attention == "bahdanau":
            assert keys is not None
            context, weights = self._bahdanau(self._top(state), keys, memory, mask)
            x = torch.cat([x, context[:, None, :]], dim=-1)
        s, state = self.decoder(x, state)  # (B, 1, H)
        if self.attention == "luong":
            s, w = self._luong(s, memory, mask)
            weights = w[:, 0]
        elif self.attention == "bahdanau":
            s = torch.cat([s, context[:, None, :]], dim=-1)
        return self.out(s[:, 0]), state, weights

    # ----------------------------------------------------------------------------------------- decoding

    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_length: int | None = None) -> Tensor:
        """The most probable next token at each step, until every row has made EOS or `max_length` tokens:
        ids (B, <= max_length), EOS included, PAD after it."""
        memory, state, mask = self.encode(src, src_lengths)
        keys = self.keys(memory) if self.attention == "bahdanau" else None
        B, limit = src.shape[0], max_length or self.max_length
        token = torch.full((B,), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        out, maps = [], []
        for _ in range(limit):
            y, state, weights = self.step(token, state, memory, keys, mask)
            token = _writable(y).argmax(-1).masked_fill(done, PAD)
            out.append(token)
            maps.append(weights)
            done |= token == EOS
            if bool(done.all()):
                break
        self._keep(maps)
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def beam(self, src: Tensor, src_lengths: Tensor, width: int = 5, max_length: int | None = None) -> Tensor:
        """Beam search of `width` hypotheses per source, scored by their total log-probability (a finished
        one, ending in EOS, keeps its score); the best per row, as `greedy` returns them. Width 1 is
        greedy."""
        rows = [
            self._beam_one(src[i : i + 1, : int(src_lengths[i])], src_lengths[i : i + 1], width, max_length)
            for i in range(src.shape[0])
        ]
        longest = max(len(r) for r in rows)
        out = torch.full((len(rows), longest), PAD, dtype=torch.long, device=src.device)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def _beam_one(self, src: Tensor, lengths: Tensor, width: int, max_length: int | None) -> list[int]:
        memory, state, mask = self.encode(src, lengths)
        keys = self.keys(memory) if self.attention == "bahdanau" else None  # once: the source's
        limit = max_length or self.max_length
        beams: list[tuple[float, list[int], Any]] = [(0.0, [], state)]
        finished: list[tuple[float, list[int]]] = []
        for _ in range(limit):
            k = len(beams)
            tokens = torch.tensor([b[1][-1] if b[1] else BOS for b in beams], device=src.device)
            states = _stack_states([b[2] for b in beams])
            many = None if keys is None else keys.expand(k, -1, -1)
            y, new, _ = self.step(tokens, states, memory.expand(k, -1, -1), many, mask.expand(k, -1))
            logp = torch.log_softmax(_writable(y), dim=-1)  # (k, V)
            total = torch.tensor([b[0] for b in beams], device=src.device)[:, None] + logp
            best, at = total.view(-1).topk(min(width, total.numel()))
            beams_next = []
            for score, flat in zip(best.tolist(), at.tolist(), strict=True):
                b, token = divmod(flat, self.tgt_vocab)
                seq = beams[b][1] + [token]
                if token == EOS:
                    finished.append((score, seq))
                else:
                    beams_next.append((score, seq, _select_state(new, b)))
            beams = beams_next[:width]
            if not beams or (len(finished) >= width and max(f[0] for f in finished) >= beams[0][0]):
                break
        candidates = finished or [(score, seq) for score, seq, _ in beams]
        return max(candidates, key=lambda c: c[0])[1]

    # ----------------------------------------------------------------------------------------- settings

    def settings(self) -> dict[str, Any]:
        """The [model] settings this was built with (the vocabularies and the attention are the task's)."""
        return {
            "cell": self.cell_name,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.encoder.bidirectional,
            "dropout": self.dropout,
            "embedding_dim": self.embedding_dim,
        }

    def unrecorded_settings(self) -> dict[str, str]:
        return {} if self.cell_name else {"cell": "a Cell class, not a registered cell's name"}


def _writable(logits: Tensor) -> Tensor:
    """Logits with PAD and BOS ruled out: decoding never writes them."""
    out = logits.clone()
    out[..., PAD] = out[..., BOS] = float("-inf")
    return out


def _stack_states(states: list[Any]) -> Any:
    if isinstance(states[0], tuple):
        return tuple(torch.cat([s[i] for s in states], dim=1) for i in range(len(states[0])))
    return torch.cat(states, dim=1)


def _select_state(state: Any, row: int) -> Any:
    if isinstance(state, tuple):
        return tuple(s[:, row : row + 1] for s in state)
    return state[:, row : row + 1]


def sequence_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of each next token, padding (0) left out: logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)


__all__ = ["ATTENTIONS", "BOS", "EOS", "PAD", "Seq2Seq", "sequence_loss"]
