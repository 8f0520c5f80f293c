"""The ONNX export of a run's network, checked against torch, for the torch-free tagger.

``model.onnx`` takes normalised features ``features`` (B, n_bins, T), dynamic batch and time,
and gives ``logits`` (B, n_tags) and ``frame_logits`` (B, T', n_tags). It serves
``python -m pipeline tag`` and the dashboard's "Tag a file" (`pipeline.scoring.tagger.OnnxTagger`),
which start in a fraction of torch's import time. The score stage exports it and checks, on
two input shapes, that ONNX Runtime gives torch's outputs (`ONNX_RTOL`, `ONNX_ATOL`), so the
tag command agrees with the scores in predictions.parquet.
"""

from __future__ import annotations

import copy
import io
import logging
import time
import warnings
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.io import atomic_path
from pipeline.scoring.tagger import INPUT_NAME, OUTPUT_NAMES

log = logging.getLogger(__name__)

ONNX_RTOL, ONNX_ATOL = 1e-3, 1e-4  # ONNX Runtime vs torch, on logits


class _ExportWrapper(torch.nn.Module):
    """One graph with both outputs: ``x (B, n_bins, T) -> (logits (B, n_tags), frame_logits (B, T', n_tags))``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x), self.model.frame_logits(x)


def _export(wrapper: torch.nn.Module, example: torch.Tensor, path: Path, exporter: str) -> None:
    """Write ``wrapper`` to ``path`` with the TorchScript-based or the torch.export-based exporter."""
    kwargs: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": list(OUTPUT_NAMES)}
    if exporter == "torchscript":
        kwargs["dynamic_axes"] = {INPUT_NAME: {0: "batch", 2: "time"}, OUTPUT_NAMES[0]: {0: "batch"},
                                  OUTPUT_NAMES[1]: {0: "batch", 1: "frames"}}
    else:
        dim = torch.export.Dim.DYNAMIC
        kwargs["dynamic_shapes"] = {"x": {0: dim, 2: dim}}
    # both exporters chat on stdout and warn about deprecations; the result is checked below
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(path), dynamo=exporter == "dynamo", **kwargs)
    wrapper.eval()  # the exporters restore the mode they found; be sure it is eval


def _check_export(wrapper: torch.nn.Module, path: Path, shapes: Sequence[tuple[int, int, int]]) -> float:
    """Largest |ONNX - torch| over both outputs on random inputs of ``shapes``; raises if out of tolerance."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for shape in shapes:
        x = torch.randn(*shape, generator=generator)
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x.numpy()})
        with torch.no_grad():
            want = [t.numpy() for t in wrapper(x)]
        for name, g, w in zip(OUTPUT_NAMES, got, want):
            if g.shape != w.shape:
                raise ValueError(f"{name}: ONNX shape {g.shape} != torch shape {w.shape} for input {shape}")
            if not np.allclose(g, w, rtol=ONNX_RTOL, atol=ONNX_ATOL):
                raise ValueError(f"{name}: ONNX differs from torch by up to {np.abs(g - w).max():.2e} for input {shape}")
            worst = max(worst, float(np.abs(g - w).max()))
    return worst


def export_onnx(model: torch.nn.Module, path: str | Path, *, n_bins: int, chunk_frames: int) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` (atomically) and check it against torch.

    The TorchScript-based exporter is tried first (it handles every pooling network of the
    zoo in well under a second); the torch.export-based one is the fallback. Each result is
    checked on a batch of one chunk and on a batch of two inputs of another length, so a
    graph that fixed the batch or time size is rejected.

    Returns ``{"exporter", "max_abs_diff", "seconds"}``; raises `RuntimeError` listing each
    exporter's failure when none gives a graph that matches torch.
    """
    start = time.perf_counter()
    wrapper = _ExportWrapper(copy.deepcopy(model).cpu().float().eval()).eval()
    example = torch.randn(2, n_bins, chunk_frames)
    shapes = [(1, n_bins, chunk_frames), (2, n_bins, 2 * chunk_frames + 37)]
    errors = []
    for exporter in ("torchscript", "dynamo"):
        try:
            with atomic_path(path) as tmp:
                _export(wrapper, example, tmp, exporter)
                diff = _check_export(wrapper, tmp, shapes)
            return {"exporter": exporter, "max_abs_diff": diff, "seconds": round(time.perf_counter() - start, 2)}
        except Exception as exc:  # any exporter failure means: try the next one
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            errors.append(f"{exporter}: {type(exc).__name__}: {first_line[:300]}")
            log.debug("ONNX export with %s failed", exporter, exc_info=True)
    raise RuntimeError("; ".join(errors))
