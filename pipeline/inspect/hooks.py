"""Layers read through forward hooks, the inspection graph exported to ONNX, first-layer kernels (torch).

Each registered CNN names its inspectable layers in its registration (`models.base.ModelInfo.layers`);
`LayerTap` hooks them, so a layer's output is read without the model exposing it. ``model.embed``
runs every one of them (the zoo's embeddings are computed from all its layers), so it is the
forward pass used here.
"""

from __future__ import annotations

import copy
import io
import logging
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.inspect.maps import INPUT_NAME, LayerInfo
from pipeline.io import atomic_path

log = logging.getLogger(__name__)

ONNX_ATOL = 1e-3  # ONNX Runtime vs torch, on activations (of order 1 after batch-norm)


def named_layers(model: nn.Module, model_name: str) -> list[tuple[str, nn.Module]]:
    """The model's inspectable layers (name, module), from its registration."""
    from models.registry import model_layers

    return model_layers(model_name, model)  # type: ignore[arg-type]


class LayerTap:
    """Forward hooks on named modules: while installed, ``outputs[name]`` is the module's last output.

    Use as a context manager; the hooks are removed on exit. ``on_output(name, tensor)``, when
    given, is called instead of keeping the output (the score stage's recorder reduces it at once).
    """

    def __init__(self, layers: list[tuple[str, nn.Module]], on_output: Any = None) -> None:
        self.layers = layers
        self.on_output = on_output
        self.outputs: dict[str, Tensor] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> LayerTap:
        for name, module in self.layers:
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            if self.on_output is not None:
                self.on_output(name, output)
            else:
                self.outputs[name] = output
        return hook

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@torch.no_grad()
def layer_outputs(model: nn.Module, model_name: str, x: Tensor) -> dict[str, Tensor]:
    """Every inspectable layer's output for input ``x`` (B, n_bins, T): {name: (B, C, T') or (B, C, F', T')}."""
    with LayerTap(named_layers(model, model_name)) as tap:
        model.embed(x)
    return {name: tap.outputs[name] for name, _ in tap.layers}


def layer_infos(model: nn.Module, model_name: str, *, n_bins: int, chunk_frames: int) -> list[LayerInfo]:
    """Each inspectable layer's channels and map geometry, probed with one chunk of zeros on the CPU."""
    probe = copy.deepcopy(model).cpu().float().eval()
    outs = layer_outputs(probe, model_name, torch.zeros(1, n_bins, chunk_frames))
    infos = []
    for i, (name, out) in enumerate(outs.items()):
        if out.ndim not in (3, 4):
            raise ValueError(f"{model_name} layer {name!r} gives a {out.ndim}-D output; a feature map is 3-D or 4-D")
        infos.append(LayerInfo(name, f"layer{i}", int(out.shape[1]), int(out.shape[2]) if out.ndim == 4 else 0,
                               int(out.shape[-1])))
    return infos


class InspectGraph(nn.Module):
    """``x (B, n_bins, chunk_frames) -> (layer outputs ...)``: what ``inspect.onnx`` computes."""

    def __init__(self, model: nn.Module, model_name: str) -> None:
        super().__init__()
        self.model = model
        self.names = [name for name, _ in named_layers(model, model_name)]
        self.model_name = model_name

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        with LayerTap(named_layers(self.model, self.model_name)) as tap:
            self.model.embed(x)
        return tuple(tap.outputs[name] for name in self.names)


def export_inspector(model: nn.Module, model_name: str, path: str | Path, *, n_bins: int,
                     chunk_frames: int) -> dict[str, Any]:
    """Write ``inspect.onnx`` (atomically): chunks in, one output per inspectable layer; checked against torch.

    Batch is dynamic, time is one chunk (the dashboard feeds whole chunks, `pipeline.inspect.maps`).
    Returns ``{"seconds", "max_abs_diff"}``; raises `RuntimeError` when the export fails or differs.
    """
    import onnxruntime as ort

    start = time.perf_counter()
    graph = InspectGraph(copy.deepcopy(model).cpu().float().eval(), model_name).eval()
    infos = layer_infos(model, model_name, n_bins=n_bins, chunk_frames=chunk_frames)
    outputs = [info.output for info in infos]
    try:
        with atomic_path(path) as tmp:
            with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(graph, (torch.randn(2, n_bins, chunk_frames),), str(tmp), dynamo=False,
                                  input_names=[INPUT_NAME], output_names=outputs,
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
            x = torch.randn(3, n_bins, chunk_frames, generator=torch.Generator().manual_seed(0))
            got = session.run(outputs, {INPUT_NAME: x.numpy()})
            with torch.no_grad():
                want = [t.numpy() for t in graph(x)]
            worst = 0.0
            for info, g, w in zip(infos, got, want):
                if g.shape != w.shape or not np.allclose(g, w, rtol=1e-3, atol=ONNX_ATOL):
                    diff = np.abs(g - w).max() if g.shape == w.shape else f"shape {g.shape} != {w.shape}"
                    raise ValueError(f"layer {info.name}: ONNX differs from torch ({diff})")
                worst = max(worst, float(np.abs(g - w).max()))
    except Exception as exc:  # any exporter failure: the page then says live maps are unavailable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RuntimeError(f"{type(exc).__name__}: {first[:300]}") from exc
    return {"seconds": round(time.perf_counter() - start, 2), "max_abs_diff": worst}


def first_layer_kernels(model: nn.Module) -> dict[str, np.ndarray]:
    """Kernels of every convolution reading the input itself (one input channel), by module name, float32.

    (C, 1, k) for 1-D convolutions, (C, 1, height, width) for 2-D ones: samplecnn's stem,
    musicnn's five front-end filters, each 2-D CNN's first conv (and shortchunk_res's shortcut).
    """
    return {name: module.weight.detach().float().cpu().numpy().copy() for name, module in model.named_modules()
            if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.in_channels == 1}
