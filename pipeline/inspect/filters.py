"""First-layer filters shown as what they are (numpy only).

The score stage saves the kernels of every convolution that reads the input itself (one input
channel; `pipeline.inspect.hooks.first_layer_kernels`) into ``filters.npz``. Here they are
grouped by shape: a sample-level model's 1-D kernels are shown by their frequency responses
(the Edinburgh analysis), 2-D kernels as small images, musicnn's tall *timbral* (vertical)
filters apart from its long *temporal* (horizontal) ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FilterGroup:
    """Kernels of one layer: ``kind`` is ``"1d"``, ``"vertical"``, ``"horizontal"`` or ``"square"``.

    kernels : np.ndarray [shape=(C, k) for 1-D, (C, height in bins, width in frames) for 2-D]
    """

    name: str
    kind: str
    kernels: np.ndarray

    @property
    def label(self) -> str:
        shape = "x".join(str(s) for s in self.kernels.shape[1:])
        what = {"1d": "1-D kernels (samples)", "vertical": "vertical (timbral) filters, bins x frames",
                "horizontal": "horizontal (temporal) filters, bins x frames", "square": "2-D kernels, bins x frames"}
        return f"{self.name}: {len(self.kernels)} {what[self.kind]} of {shape}"


def kind_of(kernel_shape: tuple[int, ...]) -> str:
    """``"1d"`` for (k,), else by (height, width): taller than wide vertical, wider than tall horizontal."""
    if len(kernel_shape) == 1:
        return "1d"
    h, w = kernel_shape[-2], kernel_shape[-1]
    return "vertical" if h > w else "horizontal" if w > h else "square"


def groups(arrays: dict[str, np.ndarray]) -> list[FilterGroup]:
    """``filters.npz``'s arrays ((C, 1, k) or (C, 1, h, w), by module name) as groups, in the file's order."""
    out = []
    for name, weights in arrays.items():
        w = np.asarray(weights, dtype=np.float32)
        if w.ndim not in (3, 4) or w.shape[1] != 1:
            raise ValueError(f"filters of {name!r} should be (C, 1, k) or (C, 1, h, w), got {w.shape}")
        kernels = w[:, 0]
        out.append(FilterGroup(name, kind_of(kernels.shape[1:]), kernels))
    return out


def frequency_response(kernels: np.ndarray, sample_rate: float, *, n_fft: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude responses of 1-D kernels (C, k): frequencies [n_fft // 2 + 1] and dB (C, n_fft // 2 + 1).

    Each row is in dB relative to its own peak (0 dB at the peak; a zero kernel is all -inf → -120).
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    n = max(n_fft, kernels.shape[-1])
    mag = np.abs(np.fft.rfft(kernels, n=n, axis=-1))
    peak = mag.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 20 * np.log10(np.where(peak > 0, mag / peak, 0.0))
    return np.fft.rfftfreq(n, 1.0 / sample_rate), np.maximum(db, -120.0)


def peak_frequencies(kernels: np.ndarray, sample_rate: float) -> np.ndarray:
    """The frequency (Hz) of each 1-D kernel's largest response: sorting by it orders a filterbank."""
    freqs, db = frequency_response(kernels, sample_rate)
    return freqs[np.argmax(db, axis=-1)]
