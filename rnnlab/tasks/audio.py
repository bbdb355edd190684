"""Audio for the sequence-classification tasks: PCM wav files read with the standard library, and MFCCs.

`read_wav(path)` gives the samples as float32 in [-1, 1] and the sample rate; a stereo (or multi-channel)
file becomes mono by averaging its channels. `mfcc(samples, sample_rate)` turns them into a (frames,
n_mfcc) float32 sequence, the usual front end of speech recognisers, in five steps (the first four are
`log_mel`):

    samples --pre-emphasis--> x[n] - 0.97 x[n-1]          (lifts the high frequencies speech is weak in)
            --frames--------> Hann-windowed frames of frame_ms, every hop_ms; |FFT|^2 (torch.stft)
            --mel bank------> n_mels triangles, equally spaced on the HTK mel scale 2595 log10(1 + f/700)
            --log-----------> log(max(energy, log_floor))  (silence gives log(floor), never -inf)
            --DCT-II--------> the first n_mfcc coefficients of the orthonormal DCT (decorrelates the bands)

Framing, the padding and the frame count: frame t covers samples t*hop .. t*hop + frame - 1 (no centring, no
padding at the ends), so a signal of N samples gives 1 + (N - frame) // hop frames and its tail shorter than
a hop is dropped; a signal shorter than one frame is zero-padded to one frame. Each frame is zero-padded to
n_fft points (default: the power of two at or above the frame) before its FFT.

torch has no DCT and torchaudio/librosa are not used (torchaudio's wheels do not match the CPU torch), so the
mel filterbank (`mel_filterbank`) and the DCT matrix (`dct_matrix`) are built here from their definitions.
"""

from __future__ import annotations

import math
import os
import wave
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnlab.errors import ConfigError, DataError

PathLike = str | os.PathLike[str]

#: the sample width in bytes -> (numpy dtype of one sample, the value of full scale).
PCM_WIDTHS: dict[int, tuple[np.dtype[Any], float]] = {
    1: (np.dtype(np.uint8), 128.0),
    2: (np.dtype("<i2"), 32768.0),
    4: (np.dtype("<i4"), 2.0**31),
}


def read_wav(path: PathLike) -> tuple[Tensor, int]:
    """The samples of a PCM wav file, float32 in [-1, 1], and its sample rate.

    8-bit (unsigned), 16-bit, 24-bit and 32-bit (signed) PCM are read; the channels are averaged to mono.
    Compressed or floating-point wavs, files that are not wav and wavs without samples raise `DataError`
    naming the file.

    Shape: samples (N,).
    """
    try:
        with wave.open(os.fspath(path), "rb") as f:
            channels, width, rate, frames = (
                f.getnchannels(),
                f.getsampwidth(),
                f.getframerate(),
                f.getnframes(),
            )
            raw = f.readframes(frames)
    except wave.Error as e:
        raise DataError(
            f"{path}: not a PCM wav file ({e}); convert it, e.g. ffmpeg -i IN -c:a pcm_s16le OUT"
        ) from None
    except EOFError:
        raise DataError(f"{path}: not a wav file (it ends inside its header)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
    whole = len(raw) // (width * channels) * width * channels  # a truncated last frame is dropped
    if whole == 0:
        raise DataError(f"{path}: the wav file holds no samples")
    if width == 3:  # 24-bit: widen each little-endian sample to 32 bits by a zero low byte
        padded = np.zeros((whole // 3, 4), dtype=np.uint8)
        padded[:, 1:] = np.frombuffer(raw[:whole], dtype=np.uint8).reshape(-1, 3)
        ints, full_scale = padded.view("<i4").ravel(), 2.0**31
    elif width in PCM_WIDTHS:
        dtype, full_scale = PCM_WIDTHS[width]
        ints = np.frombuffer(raw[:whole], dtype=dtype)
    else:
        raise DataError(f"{path}: {8 * width}-bit samples are not PCM that this reader knows (8/16/24/32)")
    values = ints.astype(np.float64)
    if width == 1:
        values -= 128.0  # 8-bit wav samples are unsigned, silence at 128
    mono = (values / full_scale).reshape(-1, channels).mean(axis=1)
    return torch.from_numpy(mono.astype(np.float32)), rate


def hz_to_mel(hz: Tensor) -> Tensor:
    """The HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    """The inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """Triangular filters on the FFT bins, centred at mel-spaced frequencies (peak height 1, HTK style).

    n_mels + 2 frequencies equally spaced in mel from f_min to f_max (default: sample_rate / 2) give each
    filter k its lower edge, centre and upper edge (points k, k+1, k+2); its weight rises linearly in Hz
    from 0 at the lower edge to 1 at the centre and falls back to 0 at the upper edge. Neighbouring
    triangles overlap so that the weights sum to 1 between the first and the last centre.

    Shape: (n_mels, n_fft // 2 + 1), float64.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ConfigError(f"mel band: need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    low, high = hz_to_mel(torch.tensor([f_min, f_max], dtype=torch.float64))
    points = mel_to_hz(torch.linspace(low, high, n_mels + 2, dtype=torch.float64))  # (n_mels + 2,)
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft  # (bins,)
    lower, centre, upper = points[:-2, None], points[1:-1, None], points[2:, None]  # (n_mels, 1)
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    bank = torch.minimum(rising, falling).clamp_min(0.0)  # (n_mels, bins)
    empty = (bank.sum(dim=1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ConfigError(
            f"mel filterbank: {len(empty)} of the {n_mels} filters (the first: {empty[0]}) fall between "
            f"two FFT bins (n_fft={n_fft} at {sample_rate} Hz); use fewer mels or a larger n_fft"
        )
    return bank


def dct_matrix(n: int) -> Tensor:
    """The orthonormal DCT-II as a matrix: row k is sqrt(2/n) cos(pi k (2m + 1) / (2n)) over m, row 0
    scaled by 1/sqrt(2), so that `dct_matrix(n) @ x` is the DCT of x and its transpose is its inverse.

    Shape: (n, n), float64.
    """
    k = torch.arange(n, dtype=torch.float64)[:, None]
    m = torch.arange(n, dtype=torch.float64)[None, :]
    matrix = math.sqrt(2.0 / n) * torch.cos(math.pi * k * (2 * m + 1) / (2 * n))
    matrix[0] /= math.sqrt(2.0)
    return matrix


def deltas(features: Tensor, width: int = 2) -> Tensor:
    """The regression slope of each feature over +-width frames, sum_n n (c[t+n] - c[t-n]) / (2 sum_n n^2),
    the first and last frames repeated past the ends (so a constant gives 0, a ramp its slope inside).

    Shape: features (T, F) -> (T, F).
    """
    frames = features.shape[0]
    padded = torch.cat([features[:1].expand(width, -1), features, features[-1:].expand(width, -1)])
    slope = torch.zeros_like(features)
    for n in range(1, width + 1):
        slope += n * (padded[width + n : width + n + frames] - padded[width - n : width - n + frames])
    return slope / (2 * sum(n * n for n in range(1, width + 1)))


def log_mel(
    samples: Tensor | np.ndarray,
    sample_rate: int,
    n_mels: int = 40,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    n_fft: int | None = None,
    preemphasis: float = 0.97,
    f_min: float = 0.0,
    f_max: float | None = None,
    log_floor: float = 1e-10,
) -> Tensor:
    """The log energy in each mel band of each frame: the first four steps of `mfcc` (same arguments).

    Shape: samples (N,) -> (1 + (N - frame) // hop, n_mels), float32.
    """
    frame = round(sample_rate * frame_ms / 1000)
    hop = round(sample_rate * hop_ms / 1000)
    n_fft = n_fft or 1 << (frame - 1).bit_length()
    if frame < 2 or hop < 1 or n_fft < frame:
        raise ConfigError(f"mfcc: frame {frame}, hop {hop}, n_fft {n_fft} samples: need 2 <= frame <= n_fft")
    x = torch.as_tensor(samples, dtype=torch.float32).flatten()
    x = torch.cat([x[:1], x[1:] - preemphasis * x[:-1]])
    x = torch.nn.functional.pad(x, (0, max(0, frame - len(x))))  # at least one frame
    # torch.stft centres a window shorter than n_fft inside each n_fft-point frame; padding by the
    # difference (its left half before the signal) makes frame t cover exactly x[t*hop : t*hop + frame].
    left = (n_fft - frame) // 2
    x = torch.nn.functional.pad(x, (left, n_fft - frame - left))
    window = torch.hann_window(frame, periodic=True)
    spectrum = torch.stft(x, n_fft, hop, frame, window, center=False, return_complex=True)  # (bins, T)
    power = spectrum.real.square() + spectrum.imag.square()
    bank = mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max).to(torch.float32)  # (n_mels, bins)
    return (bank @ power).clamp_min(log_floor).log().T  # (T, n_mels)


def mfcc(
    samples: Tensor | np.ndarray,
    sample_rate: int,
    n_mfcc: int = 13,
    n_mels: int = 40,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    n_fft: int | None = None,
    preemphasis: float = 0.97,
    f_min: float = 0.0,
    f_max: float | None = None,
    log_floor: float = 1e-10,
    delta_order: int = 0,
) -> Tensor:
    """Mel-frequency cepstral coefficients of a mono signal (see the module docstring for the steps).

    Args:
        samples: the signal, float (e.g. from `read_wav`).
        sample_rate: in Hz.
        n_mfcc: the coefficients kept, c0 (the mean log energy over the bands, times sqrt(n_mels)) first;
            at most n_mels.
        n_mels: the triangular mel filters.
        frame_ms, hop_ms: the frame length and the step between frames, rounded to whole samples.
        n_fft: the FFT size, >= the frame (default: the power of two at or above it).
        preemphasis: a in x[n] - a x[n-1] (0 turns it off).
        f_min, f_max: the band the mel filters span (default 0 to sample_rate / 2).
        log_floor: the smallest band energy taken the log of, so that silence stays finite.
        delta_order: 0 for the coefficients alone; 1 appends their deltas, 2 also the deltas of the deltas.

    Shape: samples (N,) -> (1 + (N - frame) // hop, n_mfcc * (1 + delta_order)), float32.

    Example:
        >>> mfcc(torch.zeros(8000), 8000).shape  # 1 s at 8 kHz: frames of 200 samples every 80
        torch.Size([98, 13])
    """
    if not 1 <= n_mfcc <= n_mels:
        raise ConfigError(f"mfcc: need 1 <= n_mfcc <= n_mels, got n_mfcc={n_mfcc}, n_mels={n_mels}")
    if delta_order not in (0, 1, 2):
        raise ConfigError(f"mfcc: delta_order must be 0, 1 or 2, got {delta_order}")
    energies = log_mel(
        samples, sample_rate, n_mels, frame_ms, hop_ms, n_fft, preemphasis, f_min, f_max, log_floor
    )
    parts = [energies @ dct_matrix(n_mels)[:n_mfcc].T.to(torch.float32)]  # (T, n_mfcc)
    for _ in range(delta_order):
        parts.append(deltas(parts[-1]))
    return torch.cat(parts, dim=1)


__all__ = ["dct_matrix", "deltas", "hz_to_mel", "log_mel", "mel_filterbank", "mel_to_hz", "mfcc", "read_wav"]
