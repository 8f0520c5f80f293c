"""A clip's feature maps, torch-free: the clip cut into chunks, run through ``inspect.onnx``, stitched in time.

Why ONNX and not maps stored per clip: a run's maps at every layer are far larger than the run
(the demo's shortchunk_res gives ~34 000 values per second of audio over its seven layers: 2 GB
in float32 for the demo's 1 500 ten-second clips, some 200 times the rest of the run), while one
pass of a clip's chunks through the exported network takes tens of milliseconds on a CPU. So the score stage exports ``inspect.onnx``
(the network up to its inspectable layers, one output per layer; `pipeline.inspect.hooks`) and
``inspect.json`` (the layers and their geometry), and the dashboard computes a clip's maps once
when it is opened (cached): choosing another layer or channel of that clip is then a slice.
What is needed across the corpus (clip means of a bounded set of channels, their tag
correlations and spectra) is precomputed in the score stage (`pipeline.inspect.precompute`).

Geometry: the model sees a clip in consecutive chunks of ``chunk_frames`` input frames (the last
zero-padded after normalisation, as in scoring); a layer gives ``chunk_steps`` time steps per
chunk, so step ``j`` of the stitched map covers input frames ``[j r, (j + 1) r)`` with
``r = chunk_frames / chunk_steps``, and, for a layer with a frequency axis, row ``i`` of
``freq_rows`` covers the mel bands ``[i n / F', (i + 1) n / F')`` (row 0 the lowest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RunDirError

INSPECT_FORMAT = 1
INPUT_NAME = "features"
MAX_BATCH = 16  # chunks per ONNX Runtime call


@dataclass(frozen=True)
class LayerInfo:
    """One inspectable layer: its module name, ONNX output, channels and map geometry.

    freq_rows : rows of its frequency axis, 0 for a layer without one (output (B, C, T'))
    chunk_steps : time steps of its map per chunk of ``chunk_frames`` input frames
    """

    name: str
    output: str
    channels: int
    freq_rows: int
    chunk_steps: int

    @property
    def has_freq(self) -> bool:
        """True when the map keeps a frequency axis of more than one row."""
        return self.freq_rows > 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "inspect.json") -> LayerInfo:
        try:
            layer = cls(str(d["name"]), str(d["output"]), int(d["channels"]), int(d["freq_rows"]),
                        int(d["chunk_steps"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunDirError(f"{where}: a layer entry should have name, output, channels, freq_rows, chunk_steps; "
                              f"found {d!r}") from exc
        if layer.channels < 1 or layer.chunk_steps < 1 or layer.freq_rows < 0:
            raise RunDirError(f"{where}: layer {layer.name!r} has an impossible geometry {d!r}")
        return layer

    def steps_per_second(self, chunk_frames: int, input_fps: float) -> float:
        """Map steps per second of audio."""
        return self.chunk_steps / chunk_frames * input_fps

    def n_steps(self, n_frames: int, chunk_frames: int) -> int:
        """Steps of the stitched map of a clip of ``n_frames`` input frames (padding dropped)."""
        return max(1, int(np.ceil(n_frames * self.chunk_steps / chunk_frames)))


def layers_of(config: dict[str, Any], *, where: str = "inspect.json") -> list[LayerInfo]:
    """The layers recorded in an ``inspect.json`` object."""
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise RunDirError(f"{where}: 'layers' should be a non-empty list, found {type(layers).__name__}")
    bad = next((d for d in layers if not isinstance(d, dict)), None)
    if bad is not None:
        raise RunDirError(f"{where}: each layer entry should be an object, found {bad!r}")
    return [LayerInfo.from_dict(d, where=where) for d in layers]


def chunk_inputs(features: np.ndarray, chunk_frames: int,
                 normalizer: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Consecutive chunks of a clip's features (T, n_bins) -> (ceil(T / chunk), n_bins, chunk), float32.

    Each chunk is normalised on its own, as `pipeline.scoring.chunks.chunk_clip` does; the last
    one is zero-padded after normalisation.
    """
    features = np.asarray(features)
    if features.ndim != 2 or len(features) < 1:
        raise ValueError(f"features must have shape (T >= 1, n_bins), got {features.shape}")
    n = -(-len(features) // chunk_frames)
    out = np.zeros((n, features.shape[1], chunk_frames), dtype=np.float32)
    for i in range(n):
        chunk = features[i * chunk_frames:(i + 1) * chunk_frames]
        chunk = normalizer(chunk) if normalizer is not None else chunk.astype(np.float32)
        out[i, :, :len(chunk)] = chunk.T
    return out


def stitch(outputs: np.ndarray, n_steps: int) -> np.ndarray:
    """Per-chunk maps (n, C, [F'], t) -> one map (C, [F'], n_steps) along time, padding cut off."""
    outputs = np.asarray(outputs)
    joined = np.concatenate(list(outputs), axis=-1) if len(outputs) else outputs
    return np.ascontiguousarray(joined[..., :n_steps])


def squeeze_freq(layer: LayerInfo, stitched: np.ndarray) -> np.ndarray:
    """(C, F', T') with a single frequency row -> (C, T'); other maps unchanged."""
    return stitched[:, 0] if stitched.ndim == 3 and not layer.has_freq else stitched


class OnnxInspector:
    """``inspect.onnx`` of a run, with its ``inspect.json``: a clip's maps at every inspectable layer.

    Torch-free (numpy, ONNX Runtime). ``maps(features)`` gives {layer name: map}, each map
    (C, T') or (C, F', T') on the clip's own time axis (see the module docstring).
    """

    def __init__(self, run_dir: str | Path, config: dict[str, Any], *, threads: int | None = None) -> None:
        import onnxruntime as ort

        from pipeline.features.extract import FeatureConfig, Normalizer

        where = str(Path(run_dir) / "inspect.json")
        self.config = config
        self.layers = layers_of(config, where=where)
        self.chunk_frames = int(config["chunk_frames"])
        self.features = FeatureConfig.from_dict(config["features"])
        self.normalizer = Normalizer.from_dict(config["normalizer"])
        path = Path(run_dir) / str(config.get("onnx") or "inspect.onnx")
        if not path.is_file():
            raise RunDirError(f"{path} does not exist (the score stage could not export it: "
                              f"{config.get('onnx_error') or 'no reason recorded'})")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own types for a damaged file
            raise RunDirError(f"{path}: unreadable ONNX model ({type(exc).__name__}: {exc})") from exc

    @property
    def input_fps(self) -> float:
        return self.features.frames_per_second

    def layer(self, name: str) -> LayerInfo:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no inspectable layer {name!r}; layers: {', '.join(x.name for x in self.layers)}")

    def maps(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Every inspectable layer's map of one clip's raw features (T, n_bins), float32."""
        chunks = chunk_inputs(features, self.chunk_frames, self.normalizer)
        names = [layer.output for layer in self.layers]
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, len(chunks), MAX_BATCH):
            outs = self.session.run(names, {INPUT_NAME: chunks[start:start + MAX_BATCH]})
            for part, out in zip(parts, outs):
                part.append(np.asarray(out, dtype=np.float32))
        result = {}
        for layer, part in zip(self.layers, parts):
            stitched = stitch(np.concatenate(part), layer.n_steps(len(features), self.chunk_frames))
            result[layer.name] = squeeze_freq(layer, stitched)
        return result
