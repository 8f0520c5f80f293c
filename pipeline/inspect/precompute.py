"""What each channel likes across the corpus, computed inside the score stage's one pass (torch).

`ChannelRecorder` hooks a run's inspectable layers while the score stage runs its chunks through
the network (`pipeline.scoring.score.score_cache`); the taggram passes are not recorded. For each
chunk and every channel of every inspectable layer it keeps two reductions, computed on the
layer's output at once so that no map is stored:

- the channel's mean activation over the chunk (a clip's value is the mean over its chunks);
- its activation-weighted input spectrum: the input frames (log-mel bands; for the waveform
  model the log power of its STFT) weighted by the channel's positive activation at the same
  time (and, for a layer with a frequency axis, the bands under each map row), summed over the
  corpus. Divided by the summed weights it is the average spectrum of what the channel lets
  through (the "average spectrum of each channel's response over the corpus").

How channels are chosen (the bound): after the pass, per layer, the `MAX_CHANNELS` channels
whose clip means vary most across the corpus (`pipeline.inspect.stats.select_channels`: a
channel that is the same on every clip says nothing about what distinguishes clips). Only
those are written: their clip means (``channel_activations.npy``, from which the page ranks a
channel's top-activating clips), their Pearson correlation with every tag over the clips
(``channel_tags.npy``: with the annotations where the corpus has them, else with the predicted
probabilities, ``inspect.json``'s ``correlation.basis``) and their spectra
(``channel_spectra.npy``). The cost: one mean and one weighted sum per layer output (measured
in docs/benchmarks.md), and n_clips x channels floats in memory during the pass.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.inspect import stats
from pipeline.inspect.hooks import LayerTap, export_inspector, first_layer_kernels, layer_infos, named_layers
from pipeline.inspect.maps import INPUT_NAME, INSPECT_FORMAT
from pipeline.run import files as rf

log = logging.getLogger(__name__)

SPECTRUM_NFFT, SPECTRUM_HOP = 512, 256  # the waveform model's input spectrum (the features' STFT)


class _RecordingNetwork:
    """A `pipeline.scoring.network.EmbeddingNetwork` that records the chunk pass (``embed_logits``) only."""

    def __init__(self, net: Any, recorder: ChannelRecorder) -> None:
        self.net, self.recorder = net, recorder

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.net.logits(x)

    def frame_logits(self, x: np.ndarray) -> np.ndarray:
        return self.net.frame_logits(x)

    def embed_logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.recorder.begin(x)
        try:
            return self.net.embed_logits(x)
        finally:
            self.recorder.end()


class ChannelRecorder:
    """Channel statistics of a run's inspectable layers over the chunks the score stage runs (module docstring).

    Use ``with recorder.attached(run_model):`` around the pass and call ``clips_done(rows)`` after
    each batch of clips of equal length (rows of the clips it scored, in the order given).
    """

    def __init__(self, model: torch.nn.Module, model_name: str, *, n_clips: int, waveform: bool,
                 device: torch.device) -> None:
        self.model, self.model_name = model, model_name
        self.layers = named_layers(model, model_name)
        self.n_clips, self.waveform, self.device = n_clips, waveform, device
        self.active = False
        self._spec: Tensor | None = None
        self.pending: dict[str, list[Tensor]] = {name: [] for name, _ in self.layers}
        self.means: dict[str, np.ndarray] = {}
        self.spec_sum: dict[str, Tensor] = {}
        self.spec_weight: dict[str, Tensor] = {}
        self.corpus_sum: Tensor | None = None
        self.corpus_count = 0
        self.seconds = 0.0  # time spent recording (reductions in the hooks), the pass's extra cost

    @contextlib.contextmanager
    def attached(self, run_model: Any) -> Iterator[ChannelRecorder]:
        """Hooks installed and ``run_model.net`` recording for the duration of the block."""
        net = run_model.net
        run_model.net = _RecordingNetwork(net, self)
        try:
            with LayerTap(self.layers, on_output=self.on_output):
                yield self
        finally:
            run_model.net = net

    # -- during the chunk pass -------------------------------------------------------------------
    def spectral_view(self, x: np.ndarray) -> Tensor:
        """The input as a spectrum over time (B, n_spec, T_s): the log-mel itself, or the waveform's log STFT power."""
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        if not self.waveform:
            return t
        window = torch.hann_window(SPECTRUM_NFFT, periodic=True, device=self.device)
        power = torch.stft(t[:, 0], SPECTRUM_NFFT, SPECTRUM_HOP, window=window, center=True,
                           return_complex=True).abs().square()
        return torch.log10(1 + 1e4 * power)  # (B, n_fft // 2 + 1, frames), the features' log compression

    def begin(self, x: np.ndarray) -> None:
        start = time.perf_counter()
        with torch.no_grad():
            self._spec = self.spectral_view(x)
            total = self._spec.sum(dim=(0, 2))
        self.corpus_sum = total if self.corpus_sum is None else self.corpus_sum + total
        self.corpus_count += int(self._spec.shape[0] * self._spec.shape[2])
        self.active = True
        self.seconds += time.perf_counter() - start

    def end(self) -> None:
        self.active, self._spec = False, None

    @torch.no_grad()
    def on_output(self, name: str, out: Tensor) -> None:
        if not self.active or self._spec is None:
            return
        start = time.perf_counter()
        a = out.detach().float()
        self.pending[name].append(a.mean(dim=tuple(range(2, a.ndim))).cpu())  # (B, C)
        w = a.clamp_min(0)
        if w.ndim == 3:
            w = w[:, :, None]
        b, c, rows, t = w.shape
        spec = self._spec
        common = min(t, spec.shape[-1])
        if t != common:  # the finer of map and input is averaged onto the coarser's time steps
            w = F.adaptive_avg_pool1d(w.reshape(b, c * rows, t), common).reshape(b, c, rows, common)
        if spec.shape[-1] != common:
            spec = F.adaptive_avg_pool1d(spec, common)
        n_spec = spec.shape[1]
        if name not in self.spec_sum:
            self.spec_sum[name] = torch.zeros(c, n_spec, device=spec.device)
            self.spec_weight[name] = torch.zeros(c, n_spec, device=spec.device)
        total, weight = self.spec_sum[name], self.spec_weight[name]
        if rows == 1:
            total += torch.einsum("bct,bft->cf", w[:, :, 0], spec)
            weight += w[:, :, 0].sum(dim=(0, 2))[:, None]
        elif n_spec % rows == 0:  # map row i weighs the bands [i n / F', (i + 1) n / F') only
            k = n_spec // rows
            total += torch.einsum("bcrt,brkt->crk", w, spec.reshape(b, rows, k, -1)).reshape(c, n_spec)
            weight += w.sum(dim=(0, 3)).repeat_interleave(k, dim=1)
        else:  # the same, band by band, where the rows do not divide the bands evenly
            bounds = np.linspace(0, n_spec, rows + 1).round().astype(int)
            for i in range(rows):
                lo, hi = bounds[i], bounds[i + 1]
                if hi > lo:
                    total[:, lo:hi] += torch.einsum("bct,bft->cf", w[:, :, i], spec[:, lo:hi])
                    weight[:, lo:hi] += w[:, :, i].sum(dim=(0, 2))[:, None]
        self.seconds += time.perf_counter() - start

    def clips_done(self, rows: list[int]) -> None:
        """Fold the chunks recorded since the last call into the clip means of ``rows`` (clips of equal length)."""
        for name, pending in self.pending.items():
            if not pending:
                continue
            chunks = torch.cat(pending).numpy()  # (n_chunks, C), clip after clip
            pending.clear()
            assert len(chunks) % len(rows) == 0, (len(chunks), len(rows))
            if name not in self.means:
                self.means[name] = np.zeros((self.n_clips, chunks.shape[1]), np.float32)
            self.means[name][rows] = chunks.reshape(len(rows), -1, chunks.shape[1]).mean(axis=1)

    # -- after the pass ------------------------------------------------------------------------------
    def spectrum_axis(self, features: Any) -> dict[str, Any]:
        """What the spectra's bins are: mel bands (their centres in Hz) or STFT bins (the waveform model)."""
        from pipeline.features.extract import mel_band_centers

        if self.waveform:
            hz = np.fft.rfftfreq(SPECTRUM_NFFT, 1.0 / features.sample_rate)
            return {"kind": "linear", "n": len(hz), "hz": [round(float(f), 2) for f in hz]}
        return {"kind": "mel", "n": int(features.n_bins),
                "hz": [round(float(f), 2) for f in mel_band_centers(features)]}


def write_inspection(run: Any, run_model: Any, recorder: ChannelRecorder, *, probs: np.ndarray,
                     truth: np.ndarray | None, max_channels: int = stats.MAX_CHANNELS) -> tuple[list[str], dict[str, Any]]:
    """Write the inside-the-model files of a scored network run; returns (files written, facts for the manifest).

    ``truth`` is (n_clips, n_tags) float with NaN for tags the corpus does not annotate, or None
    for a corpus without annotations (the correlations then use ``probs``).
    """
    import pandas as pd

    start = time.perf_counter()
    model, name = run_model.model, run_model.checkpoint["model_name"]
    n_bins, chunk = run_model.features.n_bins, run_model.chunk_frames
    infos = layer_infos(model, name, n_bins=n_bins, chunk_frames=chunk)
    config: dict[str, Any] = {
        "format": INSPECT_FORMAT, "model_name": name, "onnx": None, "onnx_error": None, "input": INPUT_NAME,
        "chunk_frames": chunk, "features": run_model.features.to_dict(), "normalizer": run_model.normalizer.to_dict(),
        "layers": [], "spectrum": recorder.spectrum_axis(run_model.features),
        "selection": {"max_per_layer": max_channels,
                      "rule": "the channels whose clip means vary most across the corpus (standard deviation)"},
    }
    export: dict[str, Any] = {}
    try:
        export = export_inspector(model, name, run / rf.INSPECT_ONNX, n_bins=n_bins, chunk_frames=chunk)
        config["onnx"] = rf.INSPECT_ONNX
    except RuntimeError as exc:
        (run / rf.INSPECT_ONNX).unlink(missing_ok=True)
        config["onnx_error"] = str(exc)
        log.warning("could not export %s: %s (the page shows corpus statistics only)", rf.INSPECT_ONNX, exc)

    basis = "annotations" if truth is not None else "predictions"
    targets = truth if truth is not None else probs
    index_rows, columns, spectra = [], [], []
    for info in infos:
        means = recorder.means.get(info.name)
        if means is None:
            means = np.zeros((recorder.n_clips, info.channels), np.float32)
        kept = stats.select_channels(means, max_channels)
        layer = info.to_dict()
        layer["selected"] = kept.tolist()
        config["layers"].append(layer)
        total, weight = recorder.spec_sum.get(info.name), recorder.spec_weight.get(info.name)
        for ch in kept:
            index_rows.append({"layer": info.name, "channel": int(ch), "column": len(columns),
                               "spread": float(means[:, ch].std()), "mean": float(means[:, ch].mean())})
            columns.append(means[:, ch])
            if total is not None and weight is not None:
                w = weight[ch].cpu().numpy()
                spectra.append(np.where(w > 0, total[ch].cpu().numpy() / np.maximum(w, 1e-12), np.nan))
            else:
                spectra.append(np.full(config["spectrum"]["n"], np.nan))
    n_spec = config["spectrum"]["n"]
    activations = np.stack(columns, axis=1) if columns else np.zeros((recorder.n_clips, 0))
    correlations = stats.pearson(activations, targets) if columns else np.zeros((0, targets.shape[1]))
    corpus = (recorder.corpus_sum.cpu().numpy() / max(recorder.corpus_count, 1) if recorder.corpus_sum is not None
              else np.full(n_spec, np.nan))
    config["corpus_spectrum"] = [round(float(v), 5) for v in corpus]
    config["correlation"] = {"basis": basis, "n_clips": int(recorder.n_clips), "method": "pearson"}

    index = pd.DataFrame(index_rows, columns=["layer", "channel", "column", "spread", "mean"])
    index = index.astype({"layer": str, "channel": np.int64, "column": np.int64, "spread": np.float64,
                          "mean": np.float64})
    run.write_table(rf.CHANNEL_INDEX, index)
    run.write_array(rf.CHANNEL_ACTIVATIONS, activations.astype(np.float32))
    run.write_array(rf.CHANNEL_TAGS, correlations.astype(np.float32))
    run.write_array(rf.CHANNEL_SPECTRA, (np.stack(spectra) if spectra else np.zeros((0, n_spec))).astype(np.float32))
    run.write_arrays(rf.FILTERS, **first_layer_kernels(model))
    # timings go to the manifest only: a rerun on the same model and corpus writes identical files
    run.write_json(rf.INSPECT, config)
    cost = {"pass_seconds": round(recorder.seconds, 2), "write_seconds": round(time.perf_counter() - start, 2),
            "export_seconds": export.get("seconds"), "export_max_abs_diff": export.get("max_abs_diff")}
    files = [f for f in rf.INSIDE_FILES if f != rf.INSPECT_ONNX or config["onnx"]]
    size = sum((run / f).stat().st_size for f in files)
    info = {"channels": len(columns), "layers": len(infos), "basis": basis, "bytes": int(size),
            **cost, "onnx_error": config["onnx_error"]}
    log.info("inside the model: %d channels of %d layers, %.1f s in the pass + %.1f s written, %.1f MB",
             len(columns), len(infos), recorder.seconds, cost["write_seconds"], size / 1e6)
    return files, info
