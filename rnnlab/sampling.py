"""Text from a trained character-level language model: continue a prompt, a character at a time.

    text = rnnlab.sampling.generate(model, task, prompt="ROMEO:", length=500, temperature=0.8, seed=1)

The prompt runs through the model once (its state then holds the prompt), and each next character is drawn
from the model's distribution at `temperature` (0: always the most likely one; below 1 sharper, above 1
flatter), among the `top_k` most likely only when given, with a generator of its own seeded by `seed`: the
same model, prompt and seed give the same text. What `rnnlab generate RUN` prints.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rnnlab.errors import ConfigError


def generate(
    model: Any,
    task: Any,
    prompt: str = "\n",
    length: int = 200,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
) -> str:
    """`length` characters after `prompt`, sampled from `model` (see the module docstring).

    Args:
        model: a model with `forward_with_state` and per-step outputs over the task's characters.
        task: the `CharLMTask` it was trained on (its vocabulary and input encoding).
        prompt: text to continue ("" starts from a newline); characters the vocabulary lacks are unknown.
        temperature: >= 0; top_k: 0 for all characters, else the k most likely.
    """
    if length < 0:
        raise ConfigError(f"length must be >= 0, got {length}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0, got {top_k}")
    generator = torch.Generator().manual_seed(seed)
    ids = task.vocab.encode(prompt or "\n")
    was_training = model.training
    model.eval()
    out: list[int] = []
    with torch.no_grad():
        y, state = model.forward_with_state(task.inputs(ids[None]), None)
        for _ in range(length):
            nxt = _draw(y[0, -1], temperature, top_k, generator)
            out.append(nxt)
            y, state = model.forward_with_state(task.inputs(torch.tensor([[nxt]])), state)
    model.train(was_training)
    return str(task.vocab.decode(out))


def _draw(logits: Tensor, temperature: float, top_k: int, generator: torch.Generator) -> int:
    """One id from `logits` (V,) at `temperature` among the `top_k` largest (0: all)."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.double() / temperature
    if top_k and top_k < logits.numel():
        cut = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < cut, float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))


__all__ = ["generate"]
