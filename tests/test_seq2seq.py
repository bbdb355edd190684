"""The encoder-decoder: attention masks padding, the parallel and stepped decoders agree, beam 1 is greedy,
decoding stops at EOS, attention lets the gradient reach the whole source; the task end to end."""

from __future__ import annotations

import json

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.seq2seq import BOS, EOS, PAD, Seq2Seq, sequence_loss

pytest.importorskip("num2words")
pytest.importorskip("sacrebleu")

ATTENTIONS = ["none", "luong", "bahdanau"]


def model_of(attention, cell="lstm", **more):
    torch.manual_seed(0)
    return Seq2Seq(12, 15, 16, cell=cell, attention=attention, max_length=9, **more).eval()


def batch():
    generator = torch.Generator().manual_seed(1)
    src = torch.randint(1, 12, (3, 7), generator=generator)
    lengths = torch.tensor([7, 4, 6])
    src[1, 4:], src[2, 6:] = PAD, PAD
    tgt = torch.randint(3, 15, (3, 6), generator=generator)
    tgt[:, 0] = BOS
    return src, lengths, tgt


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_extra_padding_changes_nothing(attention):
    model = model_of(attention, bidirectional=True)
    src, lengths, tgt = batch()
    padded = torch.cat([src, torch.full((3, 5), PAD)], dim=1)
    torch.testing.assert_close(model(padded, lengths, tgt), model(src, lengths, tgt), atol=1e-6, rtol=0)
    assert torch.equal(model.greedy(padded, lengths), model.greedy(src, lengths))
    if attention != "none":
        weights = model.last_attention
        assert weights is not None and float(weights[1, :, 4:].abs().max()) == 0.0  # past its length: 0


@pytest.mark.parametrize("attention", ["none", "luong"])
def test_the_parallel_teacher_forced_decoder_equals_the_stepped_one(attention):
    model = model_of(attention, cell="gru")
    src, lengths, tgt = batch()
    stepped, fed = model._steps(*model.encode(src, lengths), tgt)
    torch.testing.assert_close(model(src, lengths, tgt), stepped, atol=1e-6, rtol=0)
    assert torch.equal(fed, tgt)  # teacher forcing feeds the true previous tokens


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_a_beam_of_one_is_greedy(attention):
    model = model_of(attention)
    src, lengths, _ = batch()
    assert torch.equal(model.beam(src, lengths, width=1), model.greedy(src, lengths))


def test_a_wider_beam_finds_a_sequence_at_least_as_probable_as_greedy():
    model = model_of("luong")
    src, lengths, _ = batch()

    def log_probability(ids, row):  # of the decoded tokens, among those decoding may write
        tokens = ids[row][ids[row] != PAD]
        tgt_in = torch.cat([torch.tensor([BOS]), tokens[:-1]])[None]
        with torch.no_grad():
            logits = model(src[row : row + 1], lengths[row : row + 1], tgt_in)
            logits[..., PAD] = logits[..., BOS] = float("-inf")
            logp = torch.log_softmax(logits, -1)
        return float(logp[0, torch.arange(len(tokens)), tokens].sum())

    greedy, beam = model.greedy(src, lengths), model.beam(src, lengths, width=4)
    for row in range(3):
        assert log_probability(beam, row) >= log_probability(greedy, row) - 1e-5


def test_decoding_stops_at_the_end_token():
    model = model_of("luong")
    src, lengths, _ = batch()
    with torch.no_grad():
        model.out.bias[EOS] = 50.0  # EOS is by far the likeliest token at every step
    ids = model.greedy(src, lengths)
    assert ids.tolist() == [[EOS]] * 3
    assert model.beam(src, lengths, width=3).tolist() == [[EOS]] * 3
    with torch.no_grad():
        model.out.bias[EOS] = -50.0  # never: decoding stops at max_length
    assert model.greedy(src, lengths).shape == (3, 9)


def test_rows_after_their_end_token_are_padding():
    model = model_of("none")
    src, lengths, _ = batch()
    ids = model.greedy(src, lengths, max_length=20)
    for row in ids.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1 :])


def test_attention_lets_the_gradient_reach_the_start_of_the_source():
    """Without attention the loss reaches the encoder through its final state alone, so the gradient fades
    towards the first source token; with attention every encoder output gets its own."""
    reach = {}
    for attention in ("none", "luong"):
        torch.manual_seed(0)
        model = Seq2Seq(12, 15, 32, cell="rnn", attention=attention, bidirectional=False).train()
        src = torch.randint(1, 12, (16, 40))
        tgt = torch.randint(3, 15, (16, 8))
        tgt[:, 0] = BOS
        with rnnlab.watch(model) as probe:
            sequence_loss(model(src, torch.full((16,), 40), tgt[:, :-1]), tgt[:, 1:]).backward()
        profile = probe.report().to_dict()["layers"]["encoder.l0"]["profile_h"]
        reach[attention] = profile[0] / max(profile)
    assert reach["none"] < 1e-3 < reach["luong"]


# ------------------------------------------------------------------------------------------------ the task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("s2s") / "run"
    flags = ["--task", "seq2seq", "--task.count", "400", "--task.high", "99", "--model.hidden_size", "32"]
    flags += [
        "--steps",
        "120",
        "--eval.every",
        "60",
        "--diagnostics.every",
        "60",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(["train", *flags]) == 0
    return out


def test_a_short_run_beats_the_memoryless_answers(trained):
    summary = json.loads((trained / "summary.json").read_text())
    test, baseline = summary["test"], summary["baseline"]
    assert set(test) >= {"loss", "exact", "token_accuracy", "bleu"}
    assert test["exact"] > baseline["exact"] + 0.3
    assert test["bleu"] > baseline["bleu"]
    assert test["loss"] < baseline["loss"]
    assert (trained / "src_vocab.json").is_file() and (trained / "tgt_vocab.json").is_file()
    probes = [json.loads(line) for line in (trained / "diagnostics.jsonl").read_text().splitlines()]
    assert set(probes[-1]["layers"]) == {"encoder.l0", "encoder.l0_reverse", "decoder.l0"}


def test_translate_writes_out_numbers(trained, capsys):
    assert main(["translate", str(trained), "21", "7", "--beam", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.strip() for line in lines)
    assert lines[1] == "sept"  # a number it has seen, in French


def test_translate_refuses_a_run_of_another_task(tmp_path, capsys):
    run = tmp_path / "adding"
    assert (
        main(
            ["train", "--task", "adding", "--task.length", "5", "--steps", "2", "--out", str(run), "--quiet"]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["translate", str(run), "12"]) == 2
    assert "translate needs a seq2seq run" in capsys.readouterr().err


def test_a_pairs_file_trains_and_a_bad_one_is_named(tmp_path, capsys):
    good = tmp_path / "pairs.tsv"
    good.write_text("".join(f"file {i} not found\tfichier {i} introuvable\n" for i in range(60)))
    flags = [
        "--task",
        "seq2seq",
        "--task.path",
        str(good),
        "--model.hidden_size",
        "16",
        "--steps",
        "3",
        "--quiet",
    ]
    assert main(["train", *flags, "--out", str(tmp_path / "run")]) == 0
    bad = tmp_path / "bad.tsv"
    bad.write_text("hello\tbonjour\nno tab here\n")
    flags[flags.index(str(good))] = str(bad)
    assert main(["train", *flags, "--out", str(tmp_path / "bad-run")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: line 2" in err and "Traceback" not in err


def test_the_report_shows_attention_maps_and_translations(trained, tmp_path):
    from rnnlab.report import write_report

    page = write_report([trained], tmp_path / "r.html").read_text()
    assert 'alt="run: attention maps"' in page
    truth = json.loads((trained / "summary.json").read_text())["test"]
    assert "(truth: " in page and truth  # the translations of the first test pairs, beside their truth
