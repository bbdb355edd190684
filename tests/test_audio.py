"""Wav reading and MFCCs: samples read back exactly from wavs written with `wave`, the mel filterbank and the
DCT against their definitions, a pure tone, frame counts, silence, and the whole pipeline against a float64
reference written here with numpy."""

from __future__ import annotations

import math
import struct
import wave

import numpy as np
import pytest
import torch

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks.audio import (
    dct_matrix,
    deltas,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    read_wav,
)


def write_wav(path, frames: np.ndarray, width: int, rate: int = 8000):
    """A PCM wav of integer samples (frames, channels) as stored: unsigned for 8-bit, signed otherwise."""
    little = frames.astype({1: "u1", 2: "<i2", 4: "<i4"}[width]) if width != 3 else frames
    data = (
        little.tobytes()
        if width != 3
        else b"".join(int(v).to_bytes(3, "little", signed=True) for v in frames.ravel())
    )
    with wave.open(str(path), "wb") as f:
        f.setnchannels(frames.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)
    return path


@pytest.mark.parametrize(
    ("width", "low", "high", "zero", "full_scale"),
    [
        (1, 0, 256, 128, 128),
        (2, -32768, 32768, 0, 32768),
        (3, -(2**23), 2**23, 0, 2**23),
        (4, -(2**31), 2**31, 0, 2**31),
    ],
)
def test_a_pcm_wav_reads_back_exactly_scaled_to_minus_one_one(tmp_path, width, low, high, zero, full_scale):
    ints = np.random.default_rng(width).integers(low, high, (300, 1), dtype=np.int64)
    ints[:3, 0] = [low, high - 1, zero]
    samples, rate = read_wav(write_wav(tmp_path / "a.wav", ints, width, rate=11025))
    assert rate == 11025 and samples.dtype == torch.float32 and samples.shape == (300,)
    expected = (ints[:, 0] - zero) / full_scale
    np.testing.assert_allclose(samples.numpy(), expected, rtol=0, atol=1e-7)
    assert samples[0] == -1 and samples[2] == 0 and samples.abs().max() <= 1


def test_a_stereo_wav_becomes_the_mean_of_its_channels(tmp_path):
    ints = np.random.default_rng(0).integers(-32768, 32768, (100, 2))
    samples, _ = read_wav(write_wav(tmp_path / "s.wav", ints, 2))
    np.testing.assert_allclose(samples.numpy(), ints.mean(axis=1) / 32768, atol=1e-7)


def riff(format_tag: int, data: bytes = b"\0" * 8) -> bytes:
    """A wav header with a chosen format tag (1 = PCM, 3 = float, 6 = A-law), mono 16-bit at 8 kHz."""
    fmt = struct.pack("<HHIIHH", format_tag, 1, 8000, 16000, 2, 16)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,t,x\n1,2,3\n", "not a PCM wav file"),
        (b"RIFF\x10\0", "not a wav file"),
        (riff(3), "not a PCM wav file"),
        (riff(6), "not a PCM wav file"),
        (riff(1, b""), "holds no samples"),
    ],
    ids=["text", "truncated header", "float", "a-law", "empty"],
)
def test_what_is_not_a_pcm_wav_is_an_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as caught:
        read_wav(path)
    assert str(caught.value).startswith(str(path))


def test_a_missing_wav_is_a_data_error():
    with pytest.raises(DataError, match="nowhere.wav: cannot read it"):
        read_wav("nowhere.wav")


def test_the_mel_scale_is_htks_and_inverts():
    hz = torch.tensor([0.0, 700.0, 1000.0, 4000.0], dtype=torch.float64)
    torch.testing.assert_close(hz_to_mel(hz), 2595 * torch.log10(1 + hz / 700))
    assert hz_to_mel(torch.tensor(700.0)).item() == pytest.approx(2595 * math.log10(2))
    torch.testing.assert_close(mel_to_hz(hz_to_mel(hz)), hz)


@pytest.mark.parametrize(("f_min", "f_max"), [(0.0, None), (300.0, 3400.0)])
def test_each_mel_filter_is_a_triangle_at_its_mel_spaced_centre_and_the_bank_covers_the_band(f_min, f_max):
    n_mels, n_fft, rate = 20, 512, 8000
    bank = mel_filterbank(n_mels, n_fft, rate, f_min, f_max).numpy()
    top = rate / 2 if f_max is None else f_max
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    points = 700 * (10 ** (np.linspace(mel(f_min), mel(top), n_mels + 2) / 2595) - 1)
    bins = np.arange(n_fft // 2 + 1) * rate / n_fft
    for k in range(n_mels):
        triangle = np.interp(bins, points[k : k + 3], [0.0, 1.0, 0.0], left=0.0, right=0.0)
        np.testing.assert_allclose(bank[k], triangle, atol=1e-12)
        assert abs(bins[bank[k].argmax()] - points[k + 1]) < rate / n_fft  # a bin beside the centre
    inside = (bins > f_min) & (bins < top)
    assert (bank.sum(axis=0)[inside] > 0).all() and (bank.sum(axis=0)[~inside] == 0).all()
    between_centres = (bins >= points[1]) & (bins <= points[-2])
    np.testing.assert_allclose(bank.sum(axis=0)[between_centres], 1.0, atol=1e-12)


def test_too_many_mels_for_the_fft_is_a_config_error():
    with pytest.raises(ConfigError, match="fall between two FFT bins"):
        mel_filterbank(128, 256, 8000)
    with pytest.raises(ConfigError, match="f_min < f_max"):
        mel_filterbank(10, 256, 8000, 500, 5000)


def test_the_dct_matrix_is_orthonormal_and_is_dct_ii():
    n = 12
    matrix = dct_matrix(n)
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(n, dtype=torch.float64), rtol=0, atol=1e-12)
    x = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    by_hand = [
        (math.sqrt(1 / n) if k == 0 else math.sqrt(2 / n))
        * sum(x[m].item() * math.cos(math.pi * k * (2 * m + 1) / (2 * n)) for m in range(n))
        for k in range(n)
    ]
    torch.testing.assert_close(matrix @ x, torch.tensor(by_hand, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("band", [5, 20, 33])
def test_a_pure_tones_log_mel_energy_peaks_in_the_band_of_its_frequency(band):
    rate, n_mels = 8000, 40
    bank = mel_filterbank(n_mels, 256, rate)
    centres = mel_to_hz(torch.linspace(0, hz_to_mel(torch.tensor(4000.0)).item(), n_mels + 2)[1:-1])
    frequency = centres[band].item()
    tone = torch.sin(2 * math.pi * frequency * torch.arange(4000) / rate)
    energies = log_mel(tone, rate, n_mels=n_mels, preemphasis=0.0)  # (T, n_mels)
    assert bank[band, round(frequency * 256 / rate)] > 0.5
    assert (energies.argmax(dim=1) == band).all()


@pytest.mark.parametrize("n", [1, 150, 200, 279, 280, 281, 1000, 8000])
def test_the_frame_count_is_one_plus_the_whole_hops_after_the_first_frame(n):
    frame, hop = 200, 80  # 25 ms and 10 ms at 8 kHz
    features = mfcc(torch.randn(n, generator=torch.Generator().manual_seed(n)), 8000)
    assert features.shape == (1 + max(0, n - frame) // hop, 13) and features.dtype == torch.float32


def test_silence_gives_the_log_of_the_floor_not_minus_infinity():
    features = mfcc(torch.zeros(1000), 8000, n_mels=40, log_floor=1e-10)
    assert torch.isfinite(features).all()
    # every band at log(floor): the DCT of a constant is sqrt(n) times it in c0, zero elsewhere
    torch.testing.assert_close(features[:, 0], torch.full((11,), math.sqrt(40) * math.log(1e-10)))
    torch.testing.assert_close(features[:, 1:], torch.zeros(11, 12), rtol=0, atol=1e-4)


def reference_mfcc(x, rate, n_mfcc, n_mels, frame, hop, n_fft, a, floor):
    """The whole pipeline in float64 numpy, frame by frame, from the definitions."""
    x = np.concatenate([x[:1], x[1:] - a * x[:-1]])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)  # periodic Hann
    frames = [x[t * hop : t * hop + frame] * window for t in range(1 + (len(x) - frame) // hop)]
    power = np.abs(np.fft.rfft(np.array(frames), n=n_fft)) ** 2  # (T, bins)
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    points = 700 * (10 ** (np.linspace(0, mel(rate / 2), n_mels + 2) / 2595) - 1)
    bins = np.arange(n_fft // 2 + 1) * rate / n_fft
    bank = np.array([np.interp(bins, points[k : k + 3], [0, 1, 0], left=0, right=0) for k in range(n_mels)])
    energies = np.log(np.maximum(power @ bank.T, floor))  # (T, n_mels)
    m = np.arange(n_mels)
    dct = np.array([np.cos(np.pi * k * (2 * m + 1) / (2 * n_mels)) for k in range(n_mfcc)]) * np.sqrt(
        2 / n_mels
    )
    dct[0] /= np.sqrt(2)
    return energies @ dct.T


@pytest.mark.parametrize(
    ("rate", "n_fft", "n_mels"), [(8000, None, 40), (16000, 512, 26)], ids=["8kHz", "16kHz n_fft=512"]
)
def test_mfcc_matches_a_float64_reference_of_the_whole_pipeline(rate, n_fft, n_mels):
    x = np.random.default_rng(rate).uniform(-0.5, 0.5, 2000)
    frame, hop = rate * 25 // 1000, rate * 10 // 1000
    expected = reference_mfcc(
        x, rate, 13, n_mels, frame, hop, n_fft or 1 << (frame - 1).bit_length(), 0.97, 1e-10
    )
    got = mfcc(torch.from_numpy(x.astype(np.float32)), rate, n_mels=n_mels, n_fft=n_fft)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-4)


def test_deltas_of_a_ramp_are_its_slope_and_of_a_constant_zero():
    t = torch.arange(10, dtype=torch.float32)[:, None]
    ramp = torch.cat([3 * t, torch.full_like(t, 7.0)], dim=1)  # (10, 2)
    slope = deltas(ramp)
    torch.testing.assert_close(slope[2:-2, 0], torch.full((6,), 3.0))
    torch.testing.assert_close(slope[:, 1], torch.zeros(10))
    assert 0 < slope[0, 0] < 3  # the repeated first frame flattens the edge


def test_delta_order_appends_the_deltas_and_their_deltas():
    x = torch.randn(3000, generator=torch.Generator().manual_seed(1))
    plain = mfcc(x, 8000)
    both = mfcc(x, 8000, delta_order=2)
    assert both.shape == (plain.shape[0], 39)
    torch.testing.assert_close(both[:, :13], plain)
    torch.testing.assert_close(both[:, 13:26], deltas(plain))
    torch.testing.assert_close(both[:, 26:], deltas(deltas(plain)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_mfcc": 41}, "n_mfcc <= n_mels"),
        ({"delta_order": 3}, "delta_order"),
        ({"n_fft": 128}, "frame <= n_fft"),
    ],
)
def test_bad_mfcc_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        mfcc(torch.zeros(1000), 8000, **options)
