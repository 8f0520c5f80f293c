"""TensorFlow musicnn weights -> the torch zoo's ``musicnn`` and ``vgg`` (a state dict per model).

The published graphs name their layers in creation order (``conv2d``, ``conv2d_1``, ...,
``batch_normalization_10``; the vgg's convs ``1CNN``..``5CNN``), so each torch parameter has
one TensorFlow variable, listed in `MUSICNN_LAYERS` and `VGG_LAYERS`. Kernels are moved from
TensorFlow's layouts to torch's:

- conv2d ``[time, freq, in, out]`` -> Conv2d ``[out, in, freq, time]`` (the zoo's inputs are
  (batch, channels, frequency, time));
- the mid end's conv2d ``[7, C_in, 1, out]`` (it spans all channels) -> Conv1d ``[out, C_in, 7]``;
- dense ``[in, out]`` -> Linear ``[out, in]``;
- batch-norm ``gamma, beta, moving_mean, moving_variance`` -> ``weight, bias, running_mean,
  running_var`` (TensorFlow's epsilon 1e-3 is the zoo models' own).

Every variable the torch model needs must be present with the expected shape, and every
weight variable of the checkpoint must be used (optimizer slots such as ``.../Adam`` aside),
so a checkpoint of another architecture fails loudly instead of loading half.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from pipeline.errors import DataFormatError

_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}

# (TensorFlow layer, torch module, kind); kinds: conv2d, conv1d (a conv2d spanning all channels), dense, bn
MUSICNN_LAYERS: tuple[tuple[str, str, str], ...] = (
    ("batch_normalization", "input_bn", "bn"),
    ("conv2d", "front_end.0.conv", "conv2d"), ("batch_normalization_1", "front_end.0.bn", "bn"),
    ("conv2d_1", "front_end.1.conv", "conv2d"), ("batch_normalization_2", "front_end.1.bn", "bn"),
    ("conv2d_2", "front_end.2.conv", "conv2d"), ("batch_normalization_3", "front_end.2.bn", "bn"),
    ("conv2d_3", "front_end.3.conv", "conv2d"), ("batch_normalization_4", "front_end.3.bn", "bn"),
    ("conv2d_4", "front_end.4.conv", "conv2d"), ("batch_normalization_5", "front_end.4.bn", "bn"),
    ("conv2d_5", "mid_end.convs.0", "conv1d"), ("batch_normalization_6", "mid_end.bns.0", "bn"),
    ("conv2d_6", "mid_end.convs.1", "conv1d"), ("batch_normalization_7", "mid_end.bns.1", "bn"),
    ("conv2d_7", "mid_end.convs.2", "conv1d"), ("batch_normalization_8", "mid_end.bns.2", "bn"),
    ("batch_normalization_9", "back_end.bn_in", "bn"),
    ("dense", "back_end.dense", "dense"),
    ("batch_normalization_10", "back_end.bn_out", "bn"),
    ("dense_1", "classifier", "dense"),
)
VGG_LAYERS: tuple[tuple[str, str, str], ...] = (
    ("batch_normalization", "input_bn", "bn"),
    *((f"{i + 1}CNN", f"blocks.{i}.conv", "conv2d") for i in range(5)),
    *((f"batch_normalization_{i + 1}", f"blocks.{i}.bn", "bn") for i in range(5)),
    ("dense", "classifier", "dense"),
)
LAYERS: dict[str, tuple[tuple[str, str, str], ...]] = {"musicnn": MUSICNN_LAYERS, "vgg": VGG_LAYERS}


def _get(weights: Mapping[str, np.ndarray], name: str, ndim: int) -> np.ndarray:
    if name not in weights:
        raise DataFormatError(f"TensorFlow checkpoint has no variable {name!r}")
    value = np.asarray(weights[name], dtype=np.float32)
    if value.ndim != ndim:
        raise DataFormatError(f"TensorFlow variable {name!r} has shape {value.shape}, expected {ndim} dimensions")
    return value


def _layer(weights: Mapping[str, np.ndarray], tf_name: str, kind: str) -> dict[str, np.ndarray]:
    """The torch parameters (suffix -> array) of one TensorFlow layer."""
    if kind == "bn":
        return {suffix: _get(weights, f"{tf_name}/{var}", 1) for var, suffix in _BN.items()}
    kernel = _get(weights, f"{tf_name}/kernel", 2 if kind == "dense" else 4)
    bias = _get(weights, f"{tf_name}/bias", 1)
    if kind == "conv2d":
        kernel = kernel.transpose(3, 2, 1, 0)  # [t, f, in, out] -> [out, in, f, t]
    elif kind == "conv1d":
        if kernel.shape[2] != 1:
            raise DataFormatError(f"TensorFlow variable {tf_name}/kernel: expected one input plane, got {kernel.shape}")
        kernel = kernel[:, :, 0, :].transpose(2, 1, 0)  # [t, C, 1, out] -> [out, C, t]
    else:
        kernel = kernel.T  # [in, out] -> [out, in]
    return {"weight": kernel, "bias": bias}


def convert_state_dict(architecture: str, weights: Mapping[str, np.ndarray],
                       model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The torch state dict of ``model`` (a zoo ``musicnn`` or ``vgg``) from TensorFlow ``weights``.

    Shapes are checked against ``model``'s own parameters; a missing, misshapen or unused
    weight variable raises a `DataFormatError` naming it.
    """
    if architecture not in LAYERS:
        raise DataFormatError(f"no TensorFlow layer map for architecture {architecture!r}; known: {sorted(LAYERS)}")
    target = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for tf_name, module, kind in LAYERS[architecture]:
        used.add(tf_name)
        for suffix, value in _layer(weights, tf_name, kind).items():
            key = f"{module}.{suffix}"
            if key not in target:
                raise DataFormatError(f"{tf_name}: the torch {architecture} has no parameter {key!r}")
            if tuple(target[key].shape) != value.shape:
                raise DataFormatError(f"{tf_name}: shape {value.shape} does not fit {key} {tuple(target[key].shape)}")
            state[key] = torch.from_numpy(np.ascontiguousarray(value))
    for key, value in target.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
    missing = sorted(set(target) - set(state))
    if missing:
        raise DataFormatError(f"the TensorFlow checkpoint leaves torch parameters unset: {missing[:5]}")
    layers = {name.rsplit("/", 1)[0] for name in weights if "/" in name and "Adam" not in name}
    unused = sorted(layers - used)
    if unused:
        raise DataFormatError(f"TensorFlow layers not used by the {architecture} conversion: {unused[:5]}")
    return state
