"""Sequence to sequence: translate one string into another with `rnnlab.Seq2Seq` (an encoder-decoder).

    rnnlab train --task seq2seq --task.source numbers --task.lang fr        # 1234 -> mille deux cent ...
    rnnlab train --task seq2seq --task.source dates                         # 3 mars 2021 -> 2021-03-03
    rnnlab train --task seq2seq --task.source messages --task.lang fr       # the system's gettext catalogs
    rnnlab train --task seq2seq --task.source django --task.lang de         # Django's catalogs
    rnnlab train --task seq2seq --task.path pairs.tsv                       # your source<TAB>target lines
    rnnlab translate runs/seq2seq-... "4711"

Sources (`rnnlab/tasks/pairs.py`; nothing is downloaded): cardinals written out by num2words in `lang`
(`low`..`high`), dates written by babel in several formats and locales against their ISO form, the
English->`lang` messages of the gettext catalogs under /usr/share/locale or of Django's wheel
(`rnnlab data get django`), or the user's tab-separated pairs. Tokens are characters (`level = "char"`,
the default for numbers and dates) or words with printf/brace placeholders kept whole (`"word"`, the
default for messages and files). Vocabularies come from the training pairs only.

A pair is one item: its batch holds the source ids (B, S) with their lengths and the target ids
(B, T + 2): BOS, the tokens, EOS, padding. The model reads BOS..last token and predicts token..EOS, teacher
forced (`teacher_forcing` < 1: scheduled sampling); the loss is the cross-entropy of each next token.
Validation and test decode greedily (`beam` > 1: beam search) and score the decoded strings: `exact`
(the whole sequence right), `token_accuracy` (teacher forced, per token) and `bleu` (sacrebleu's corpus
BLEU), beside the better of two memoryless answers: copying the source, and the most frequent target.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from rnnlab.errors import ConfigError
from rnnlab.settings import option
from rnnlab.tasks import pairs as sources
from rnnlab.tasks.base import Batch, Task
from rnnlab.tasks.config import TaskConfig
from rnnlab.tasks.vocab import TargetVocab, WordVocab

SOURCES = ("numbers", "dates", "messages", "django")
LEVELS = ("auto", "char", "word")


@dataclass(frozen=True, eq=False)
class Part:
    """Pairs of one split and their ids: `src[i]` (S_i,), `tgt[i]` (T_i + 2,) with BOS and EOS."""

    pairs: tuple[sources.Pair, ...]
    src: tuple[Tensor, ...]
    tgt: tuple[Tensor, ...]

    def __len__(self) -> int:
        return len(self.pairs)


class Seq2SeqTask(Task):
    """String-to-string pairs for an encoder-decoder (see the module docstring)."""

    name = "seq2seq"
    output = "last"  # one item per pair: its loss and metrics are the pair's
    own_forward: ClassVar[bool] = True

    @dataclass
    class Settings(TaskConfig):
        name: str = option("seq2seq", "task to train on, from rnnlab.tasks.TASKS")
        source: str = option("numbers", "the pairs, when no path is given", choices=SOURCES)
        path: str = option("", "your pairs: a UTF-8 file of source<TAB>target lines (empty: the source)")
        lang: str = option("fr", "numbers: num2words' language; messages: the catalogs' language")
        locales: str = option("en,fr,de,es", "dates: the babel locales the sources are written in")
        count: int = option(20000, "numbers, dates: how many pairs to generate", min=10)
        low: int = option(0, "numbers: the smallest", min=0)
        high: int = option(999_999, "numbers: the largest", min=1)
        level: str = option(
            "auto", "tokens: char, word, or auto (char for numbers and dates)", choices=LEVELS
        )
        max_tokens: int = option(60, "pairs with a longer side (in tokens) are left out", min=2)
        min_count: int = option(1, "the fewest training occurrences for a token to have its own id", min=1)
        attention: str = option("luong", "none, luong or bahdanau", choices=("none", "luong", "bahdanau"))
        teacher_forcing: float = option(1.0, "share of steps fed the true previous token", min=0, max=1)
        beam: int = option(1, "width of the beam search at evaluation (1: greedy)", min=1)
        val_fraction: float = option(0.05, "share of the pairs for validation", gt=0, lt=1)
        test_fraction: float = option(0.05, "share of the pairs for test", gt=0, lt=1)
        batch_size: int = option(64, "pairs per training batch", min=1)
        seed: int = option(0, "seed of the generated pairs and of the splits", min=0)

    def __init__(
        self,
        source: str = "numbers",
        path: str = "",
        lang: str = "fr",
        locales: str = "en,fr,de,es",
        count: int = 20000,
        low: int = 0,
        high: int = 999_999,
        level: str = "auto",
        max_tokens: int = 60,
        min_count: int = 1,
        attention: str = "luong",
        teacher_forcing: float = 1.0,
        beam: int = 1,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        self.source, self.path, self.lang, self.locales = source, path, lang, locales
        self.count, self.low, self.high, self.level = count, low, high, level
        self.max_tokens, self.min_count, self.attention = max_tokens, min_count, attention
        self.teacher_forcing, self.beam = teacher_forcing, beam
        self.val_fraction, self.test_fraction, self.batch_size, self.seed = (
            val_fraction,
            test_fraction,
            batch_size,
            seed,
        )
        if source not in SOURCES and not path:
            raise ConfigError(f"task.source: one of {', '.join(SOURCES)}, got {source!r}")
        self.tokens = (
            level if level != "auto" else ("char" if source in ("numbers", "dates") and not path else "word")
        )
        every = [p for p in self._read() if max(map(len, self._split(p))) <= max_tokens]
        if len(every) < 10:
            raise ConfigError(
                f"task: {len(every)} pairs of at most {max_tokens} tokens a side; raise max_tokens"
            )
        train, val, test = sources.split_pairs(every, val_fraction, test_fraction, seed)
        splits = [(self._tokens(p.source), self._tokens(p.target)) for p in train]
        self.src_vocab = WordVocab.build((s for s, _ in splits), min_count=min_count)
        self.tgt_vocab = TargetVocab.build((t for _, t in splits), min_count=min_count)
        self.train, self.val, self.test = (self._encode(part) for part in (train, val, test))
        self.vocab_size = self.input_size = len(self.src_vocab)  # token inputs, checked by the loop
        self.output_size = len(self.tgt_vocab)
        self.longest = max(len(t) for part in (self.train, self.val, self.test) for t in part.tgt)
        self._decoded: tuple[Tensor, list[list[str]]] | None = None

    # -------------------------------------------------------------------------------------------- data

    def _read(self) -> list[sources.Pair]:
        if self.path:
            return sources.read_pairs_tsv(self.path)
        if self.source == "numbers":
            return sources.numbers_to_words(self.lang, self.count, self.low, self.high, self.seed)
        if self.source == "dates":
            locales = [loc.strip() for loc in self.locales.split(",") if loc.strip()]
            return sources.dates(locales, self.count, self.seed)
        if self.source == "django":
            return sources.django_pairs(self.lang)
        return sources.gettext_pairs(self.lang)

    def _tokens(self, text: str) -> list[str]:
        return sources.tokenize(text, self.tokens)  # type: ignore[arg-type]

    def _split(self, pair: sources.Pair) -> tuple[list[str], list[str]]:
        return self._tokens(pair.source), self._tokens(pair.target)

    def _encode(self, pairs: list[sources.Pair]) -> Part:
        src = tuple(self.src_vocab.encode(self._tokens(p.source)) for p in pairs)
        tgt = tuple(self.tgt_vocab.encode(self._tokens(p.target)) for p in pairs)
        return Part(tuple(pairs), src, tgt)

    def _batches(self, part: Part, order: list[int], size: int) -> Iterable[Batch]:
        for i in range(0, len(order), size):
            rows = order[i : i + size]
            src = [part.src[r] for r in rows]
            lengths = torch.tensor([len(s) for s in src], dtype=torch.int64)
            x = torch.nn.utils.rnn.pad_sequence(src, batch_first=True, padding_value=0)
            y = torch.nn.utils.rnn.pad_sequence(
                [part.tgt[r] for r in rows], batch_first=True, padding_value=0
            )
            yield Batch(x, y, lengths, ids=tuple(part.pairs[r].source for r in rows))

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        order = torch.randperm(len(self.train), generator=generator).tolist()
        return self._batches(self.train, order, self.batch_size)

    def val_batches(self) -> Iterable[Batch]:
        return self._batches(self.val, list(range(len(self.val))), max(len(self.val), 1))  # one batch

    def test_batches(self) -> Iterable[Batch]:
        return self._batches(self.test, list(range(len(self.test))), max(len(self.test), 1))

    # ------------------------------------------------------------------------------------------- model

    def build_model(self, config: Any) -> Any:
        """The `rnnlab.Seq2Seq` for these vocabularies from the run's [model] settings (cell, hidden_size,
        num_layers, bidirectional, dropout, embedding_dim, init, ...) and this task's attention."""
        from rnnlab.seq2seq import Seq2Seq

        options = {
            k: getattr(config, k)
            for k in ("init", "forget_bias", "chrono", "spectral_radius")
            if getattr(config, k, None) not in (None, "", "default", 0, 0.0)
        }
        return Seq2Seq(
            len(self.src_vocab),
            len(self.tgt_vocab),
            config.hidden_size,
            cell=config.cell,
            attention=self.attention,  # type: ignore[arg-type]
            embedding_dim=config.embedding_dim or None,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
            max_length=self.longest + 5,
            **options,
        )

    def forward(self, model: Any, batch: Batch) -> Tensor:
        """Teacher-forced logits (B, T + 1, V) of the next target tokens (scheduled sampling in training)."""
        ratio = self.teacher_forcing if model.training else 1.0
        return model(batch.inputs, batch.lengths, batch.targets[:, :-1], teacher_forcing=ratio)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        from rnnlab.seq2seq import sequence_loss

        return sequence_loss(outputs, targets[:, 1:])

    def predict(self, model: Any, batch: Batch) -> Tensor:
        """The teacher-forced logits (the loss's), and the decoded strings kept for `metrics`."""
        logits = self.forward(model, batch)
        raw = model.greedy if self.beam == 1 else lambda s, n: model.beam(s, n, width=self.beam)
        ids = raw(batch.inputs, batch.lengths)
        self._decoded = (batch.targets, [self.tgt_vocab.decode(row) for row in ids])
        return logits

    def translate(self, model: Any, texts: list[str]) -> list[str]:
        """Each text translated by `model` (greedy, or the task's beam)."""
        src = [self.src_vocab.encode(self._tokens(t)) for t in texts]
        lengths = torch.tensor([max(len(s), 1) for s in src])
        x = torch.nn.utils.rnn.pad_sequence(src, batch_first=True)
        model.eval()
        ids = model.greedy(x, lengths) if self.beam == 1 else model.beam(x, lengths, width=self.beam)
        return [sources.detokenize(self.tgt_vocab.decode(row), self.tokens) for row in ids]  # type: ignore[arg-type]

    # ----------------------------------------------------------------------------------------- metrics

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        gold = targets[:, 1:]
        real = gold != 0
        right = (outputs.argmax(-1) == gold) & real
        scores = {"token_accuracy": float(right.sum()) / max(int(real.sum()), 1)}
        if self._decoded is not None and self._decoded[0] is targets:  # decoded by `predict` just now
            truth = [self.tgt_vocab.decode(row) for row in targets]
            scores |= score_strings(self._decoded[1], truth, self.tokens)
        return scores

    def baseline(self) -> dict[str, float]:
        """The better of copying the source and always answering the most frequent training target, on the
        validation pairs; the loss of the training targets' token frequencies."""
        val = [self._split(p) for p in self.val.pairs]
        truth = [t for _, t in val]
        copy = score_strings([s for s, _ in val], truth, self.tokens)
        common = Counter(tuple(self._tokens(p.target)) for p in self.train.pairs).most_common(1)[0][0]
        frequent = score_strings([list(common)] * len(val), truth, self.tokens)
        best = max((copy, frequent), key=lambda s: (s["exact"], s["bleu"]))
        counts = Counter(int(i) for t in self.train.tgt for i in t[1:])
        total = sum(counts.values())
        entropy = -sum(c / total * math.log(c / total) for c in counts.values())
        return {"loss": entropy, **best}

    def artifacts(self) -> dict[str, str]:
        return {"src_vocab.json": self.src_vocab.to_json(), "tgt_vocab.json": self.tgt_vocab.to_json()}

    @classmethod
    def recipe_for(cls, config: TaskConfig) -> dict[str, Any]:
        """A bidirectional LSTM encoder with Luong attention, Adam (measured: RESULTS.md)."""
        return {
            "model.cell": "lstm",
            "model.hidden_size": 128,
            "model.bidirectional": True,
            "optim.name": "adam",
            "optim.lr": 3e-3,
            "clip.mode": "norm",
            "clip.max_norm": 1.0,
            "steps": 3000,
            "eval.every": 500,
            "eval.metric": "exact",
            "eval.mode": "max",
        }


def score_strings(predicted: list[list[str]], truth: list[list[str]], level: str) -> dict[str, float]:
    """`exact` (share of whole sequences right) and `bleu` (sacrebleu's corpus BLEU, 0..100, on the
    detokenised strings; for characters, on the characters spaced out, as character n-grams)."""
    exact = sum(p == t for p, t in zip(predicted, truth, strict=True)) / max(len(truth), 1)
    import sacrebleu

    join = " ".join
    hypotheses = [join(p) for p in predicted]
    references = [join(t) for t in truth]
    bleu = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none", force=True).score
    return {"exact": exact, "bleu": float(bleu)}


__all__ = ["Seq2SeqTask", "score_strings"]
