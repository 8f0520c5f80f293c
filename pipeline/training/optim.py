"""Optimisers, learning-rate schedules and per-tag positive weights of the loss."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pipeline.training.config import TrainConfig


def optimizer_phase(config: TrainConfig, epoch: int) -> str:
    """Which optimiser runs ``epoch`` (0-based): ``"adam"`` or ``"sgd"``."""
    if config.optimizer == "sgd" or (config.optimizer == "adam_sgd" and epoch >= config.sgd_after):
        return "sgd"
    return "adam"


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """Multiplier of the phase's base learning rate during ``epoch`` (0-based).

    The step schedule decays by ``gamma`` after each milestone; in ``adam_sgd`` the SGD phase
    counts only the milestones after ``sgd_after`` (Won et al.: SGD at 1e-3, 1e-4 after epoch
    100, 1e-5 after epoch 120).
    """
    if config.schedule == "step":
        sgd_phase = config.optimizer == "adam_sgd" and epoch >= config.sgd_after
        return config.gamma ** sum(1 for m in config.milestones if epoch >= m and (not sgd_phase or m > config.sgd_after))
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    return 1.0


def make_optimizer(model: nn.Module, config: TrainConfig, phase: str) -> torch.optim.Optimizer:
    """Adam or SGD over the trainable parameters: the output layer at the base rate, the rest at
    ``backbone_lr_mult`` times it (`TrainConfig.backbone_lr_factor`). Each group keeps its ``base_lr`` for `set_lr`."""
    base = config.sgd_lr if phase == "sgd" and config.optimizer == "adam_sgd" else config.lr
    head = [p for p in model.classifier.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": base, "base_lr": base}]
    if body:
        scale = config.backbone_lr_factor
        groups.append({"params": body, "lr": base * scale, "base_lr": base * scale})
    if phase == "sgd":
        return torch.optim.SGD(groups, lr=base, momentum=config.momentum, nesterov=config.momentum > 0,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=base, weight_decay=config.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Set every group's rate to its base rate times ``factor``; returns the output layer's rate."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return float(optimizer.param_groups[0]["lr"])


def compute_pos_weight(labels: np.ndarray, mode: str, cap: float) -> torch.Tensor | None:
    """Per-tag weight of positive examples in the loss (the NYU fix for rare tags), or None."""
    if mode == "none":
        return None
    pos = labels.sum(axis=0).astype(np.float64)
    neg = len(labels) - pos
    ratio = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    ratio = np.sqrt(ratio) if mode == "sqrt" else ratio
    return torch.tensor(np.clip(ratio, 1.0, cap), dtype=torch.float32)
