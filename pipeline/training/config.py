"""`TrainConfig`: everything that defines a training run, and the recipes built on it.

The feature and label settings are the stages' own configs, nested (`FeatureConfig`,
`LabelConfig`), so each of their fields and defaults has one home. Flat names
(``top_n=20``, ``sample_rate=22050``) still work in `TrainConfig.from_overrides`, the way
the CLI's flags reach the nested configs.

The CPU recipe (`CPU_RECIPE`) is shared by every network; what differs per model (width,
input, epochs) is registered with the model (`models.base.ModelInfo.cpu_recipe`), and
`recipe_config` combines the two: the demo trains the default model so, ``python -m
benchmarks train --compare`` every model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import device as devices
from pipeline.errors import ParameterError
from pipeline.features.extract import FeatureConfig
from pipeline.sources.labels import LabelConfig

# The classical baselines (models.baselines.BASELINES; not imported here, as it pulls in scikit-learn).
BASELINES: tuple[str, ...] = ("rf", "knn", "bof_lr")
SCHEDULES: tuple[str, ...] = ("step", "cosine", "none")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "adam_sgd")
POS_WEIGHTS: tuple[str, ...] = ("none", "balanced", "sqrt")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

# Flat option names and the nested field each one sets (the CLI's flags use them).
FLAT_FEATURES: dict[str, str] = {"sample_rate": "sample_rate", "n_fft": "n_fft", "hop_length": "hop_length"}
FLAT_LABELS: dict[str, str] = {"merge_synonyms": "merge_synonyms", "top_n": "top_n", "drop_untagged": "drop_untagged",
                               "split": "split", "split_seed": "seed", "ratios": "ratios"}


def _default_model() -> str:
    from models.registry import default_model

    return default_model()


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved, resolved, inside every checkpoint.

    Defaults follow the Music-Tagger recipe (Adam at 1e-3, divided by 10 at epochs 20, 30
    and 35 of 40) with the model's own input (mel bins, chunk length).
    """

    # --- model
    model: str = field(default_factory=_default_model)  # a name from models.registry.list_models(), or a baseline
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # constructor options, e.g. {"width": 0.5}
    n_mels: int | None = None  # the model's mel bins; None: its default (96 for most, 128 for shortchunk_res)
    chunk_seconds: float | None = None  # None: the model's chunk; else the training chunk length in seconds
    # --- features: sample rate and STFT; the kind and bins are the model's (resolved from its InputSpec)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    normalization: str = "per_bin"  # feature normalisation fitted on the training split (pipeline.features.extract)
    cache_root: str | None = None  # where feature caches live; None: the feature cache's default
    # --- labels: synonyms, top-N, split (merge_synonyms and split "auto" resolved per corpus source)
    labels: LabelConfig = field(default_factory=LabelConfig)
    # a verdicts CSV (pipeline.review.corrections) whose consensus corrects the labels after label
    # processing, before training; None: the annotations as they are
    corrections: str | None = None
    # --- optimisation
    epochs: int = 40  # the Music-Tagger recipe's 40 epochs
    batch_size: int = 16  # Won et al. 2020 use 16 for the short-chunk models
    optimizer: str = "adam"  # adam | sgd (Nesterov momentum) | adam_sgd (Won et al. 2020: Adam, then SGD)
    lr: float = 1e-3  # learning rate (of Adam in adam_sgd) (Music-Tagger recipe)
    weight_decay: float = 0.0  # L2 penalty (0: none, as in the Music-Tagger recipe; Won et al. use 1e-4)
    momentum: float = 0.9  # SGD's Nesterov momentum (sgd, adam_sgd)
    sgd_after: int = 80  # adam_sgd: epochs of Adam, then SGD restarting from the best checkpoint (Won et al.: 80)
    sgd_lr: float = 1e-3  # adam_sgd: learning rate of the SGD phase (Won et al.: 1e-3)
    schedule: str = "step"  # step (divide by 1/gamma at each milestone) | cosine (to 0 at the last epoch) | none
    milestones: tuple[int, ...] = (20, 30, 35)  # epochs (1-based) after which the step schedule decays
    gamma: float = 0.1  # the step schedule's factor
    pos_weight: str = "none"  # per-tag positive weight of the loss: none | balanced (neg/pos) | sqrt (its root)
    max_pos_weight: float = 50.0  # cap on a tag's positive weight, so a tag seen twice cannot dominate
    patience: int | None = None  # stop after this many epochs without a better validation ROC-AUC; None: never
    max_minutes: float | None = None  # time budget for the whole run (stops after the batch that exceeds it)
    # --- transfer learning
    init_from: str | None = None  # another run's directory (or .pt file) to start from; its model and features
    transfer: str | None = None  # with init_from, what trains: features | last:K | all (`parse_transfer`)
    freeze_blocks: int = 0  # freeze the first k blocks of the network (models.base.Tagger.named_blocks); 0: none
    backbone_lr_mult: float | None = None  # rate of every non-output layer relative to lr; None: 0.1 under
    # transfer "all" (the thesis's gentler fine-tuning of the backbone), else 1
    # --- execution
    seed: int = 0  # seeds torch, numpy, random, the data order and the crops
    workers: int | None = None  # data-loader processes; None: auto (0 on machines of <= 2 cores)
    device: str = "auto"  # auto (CUDA, else MPS, else CPU) | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (bf16 on CUDA where supported, else fp16; fp32 on CPU) | fp32 | bf16 | fp16
    deterministic: bool = True  # cuDNN deterministic kernels (CPU is deterministic anyway)
    tensorboard: bool = False  # also log to <out>/tensorboard (needs the tensorboard package)

    def __post_init__(self) -> None:
        if isinstance(self.features, dict):
            self.features = FeatureConfig.from_dict(self.features)
        if isinstance(self.labels, dict):
            self.labels = _label_config(self.labels)
        self.milestones = tuple(int(m) for m in self.milestones)
        self.model_kwargs = dict(self.model_kwargs)
        if self.corrections is not None:  # absolute, so a resumed run finds the file from any folder
            self.corrections = str(Path(self.corrections).expanduser().resolve())
        self.validate()

    def validate(self) -> None:
        """Raise `ParameterError` naming the first option outside what it accepts."""
        checks: list[tuple[bool, str]] = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be >= 2 (batch-norm needs two examples), got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.sgd_after >= 1, f"sgd_after must be >= 1, got {self.sgd_after}"),
            (self.sgd_lr > 0, f"sgd_lr must be > 0, got {self.sgd_lr}"),
            (0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}"),
            (all(m >= 1 for m in self.milestones), f"milestones must be epochs >= 1, got {self.milestones}"),
            (self.pos_weight in POS_WEIGHTS, f"pos_weight must be one of {POS_WEIGHTS}, got {self.pos_weight!r}"),
            (self.max_pos_weight >= 1, f"max_pos_weight must be >= 1, got {self.max_pos_weight}"),
            (self.patience is None or self.patience >= 1, f"patience must be >= 1 or None, got {self.patience}"),
            (self.max_minutes is None or self.max_minutes > 0, f"max_minutes must be > 0, got {self.max_minutes}"),
            (self.freeze_blocks >= 0, f"freeze_blocks must be >= 0, got {self.freeze_blocks}"),
            (self.backbone_lr_mult is None or self.backbone_lr_mult >= 0,
             f"backbone_lr_mult must be >= 0 or None, got {self.backbone_lr_mult}"),
            (self.workers is None or self.workers >= 0, f"workers must be >= 0 or None, got {self.workers}"),
            (self.chunk_seconds is None or self.chunk_seconds > 0,
             f"chunk_seconds must be > 0, got {self.chunk_seconds}"),
            (self.n_mels is None or self.n_mels >= 1, f"n_mels must be >= 1, got {self.n_mels}"),
            (self.device in devices.DEVICE_CHOICES or self.device.startswith("cuda:"),
             f"device must be one of {devices.DEVICE_CHOICES} or cuda:N, got {self.device!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)
        if self.model in BASELINES and (self.init_from or self.freeze_blocks or self.transfer):
            raise ParameterError(f"baseline {self.model!r} cannot use init_from / transfer / freeze_blocks "
                                 "(networks only)")
        if self.transfer is not None:
            parse_transfer(self.transfer)
            if not self.init_from:
                raise ParameterError(f"transfer={self.transfer!r} needs a source run to start from "
                                     "(init_from; the CLI's --from RUN)")
            if self.freeze_blocks:
                raise ParameterError(f"transfer={self.transfer!r} and freeze_blocks={self.freeze_blocks} both choose "
                                     "what trains; give one")

    @classmethod
    def from_overrides(cls, base: TrainConfig | None = None, **overrides: Any) -> TrainConfig:
        """A config from ``base`` (default: the defaults) with ``overrides``; unknown names are errors.

        ``features`` and ``labels`` take a config or a dict of some of its fields (merged into
        the base's); the flat names of `FLAT_FEATURES` and `FLAT_LABELS` (``top_n=20``,
        ``split_seed=3``) set one nested field each.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known - set(FLAT_FEATURES) - set(FLAT_LABELS))
        if unknown:
            raise ParameterError(f"unknown training option(s) {unknown}; known: "
                                 f"{', '.join(sorted(known | set(FLAT_FEATURES) | set(FLAT_LABELS)))}")
        base = base if base is not None else cls()
        values = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
        features, labels = _nested(overrides.pop("features", {})), _nested(overrides.pop("labels", {}))
        features.update({FLAT_FEATURES[k]: overrides.pop(k) for k in list(overrides) if k in FLAT_FEATURES})
        labels.update({FLAT_LABELS[k]: overrides.pop(k) for k in list(overrides) if k in FLAT_LABELS})
        values.update(overrides)
        values["features"] = FeatureConfig.from_dict({**base.features.to_dict(), **features})
        values["labels"] = _label_config({**label_dict(base.labels), **labels})
        return cls(**values)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by `to_dict` (e.g. from a checkpoint); unknown keys are errors."""
        return cls.from_overrides(None, **d)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (nested dicts, lists for tuples), fit for JSON and ``torch.load(weights_only=True)``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model_kwargs"] = dict(self.model_kwargs)
        d["features"] = self.features.to_dict()
        d["labels"] = label_dict(self.labels)
        d["milestones"] = list(self.milestones)
        return d

    @property
    def is_baseline(self) -> bool:
        return self.model in BASELINES

    @property
    def backbone_lr_factor(self) -> float:
        """``backbone_lr_mult`` resolved: 0.1 under transfer ``all`` when not given, else 1."""
        if self.backbone_lr_mult is not None:
            return float(self.backbone_lr_mult)
        return ALL_BACKBONE_LR_MULT if self.transfer == "all" else 1.0


# The backbone's learning-rate factor of transfer "all" when none is given (the RWTH thesis's
# level 3: the pretrained layers move ten times slower than the new output layer).
ALL_BACKBONE_LR_MULT = 0.1
TRANSFER_LEVELS = ("features", "last:K", "all")


@dataclass(frozen=True)
class TransferLevel:
    """What a transfer-learning run trains (`TrainConfig.transfer` parsed).

    ``features``: the source network frozen as a feature extractor, only a new output layer
    trained on its penultimate embeddings; ``last``: the last ``k`` blocks and the new output
    layer, the rest frozen; ``all``: every layer, the backbone at ``backbone_lr_mult`` times the rate.
    """

    kind: str  # features | last | all
    k: int = 0  # blocks fine-tuned (kind "last")

    def __str__(self) -> str:
        return f"last:{self.k}" if self.kind == "last" else self.kind


def parse_transfer(text: str) -> TransferLevel:
    """``"features"``, ``"last:K"`` (K >= 1) or ``"all"`` as a `TransferLevel`; anything else a `ParameterError`."""
    value = str(text).strip()
    if value in ("features", "all"):
        return TransferLevel(value)
    kind, sep, k = value.partition(":")
    if kind == "last" and sep and k.strip().isdigit() and int(k) >= 1:
        return TransferLevel("last", int(k))
    raise ParameterError(f"transfer must be one of {', '.join(TRANSFER_LEVELS)} (K >= 1 blocks), got {text!r}")


def label_dict(labels: LabelConfig) -> dict[str, Any]:
    """A `LabelConfig` as plain JSON types (the ratios, and several split files, as lists)."""
    return labels.to_dict()


def _label_config(d: dict[str, Any]) -> LabelConfig:
    known = {f.name for f in dataclasses.fields(LabelConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ParameterError(f"unknown label config field(s) {unknown}; known: {sorted(known)}")
    values = dict(d)
    if "ratios" in values:
        values["ratios"] = tuple(float(r) for r in values["ratios"])
    return LabelConfig(**values)


def _nested(value: Any) -> dict[str, Any]:
    """A nested override (a config or a dict of some of its fields) as a dict."""
    if isinstance(value, FeatureConfig):
        return value.to_dict()
    if isinstance(value, LabelConfig):
        return label_dict(value)
    if isinstance(value, dict):
        return dict(value)
    raise ParameterError(f"features / labels override must be a config or a dict, got {type(value).__name__}")


# ----------------------------------------------------------------------------- recipes

# The CPU recipe every network shares on the demo corpus (each model adds its own width, input
# and epochs: models.base.ModelInfo.cpu_recipe). With the default model it reaches test macro
# ROC-AUC >= 0.90 on the demo corpus in under 5 minutes on 2 CPU cores (docs/benchmarks.md).
CPU_RECIPE: dict[str, Any] = {
    "n_mels": 96,  # the cache the baselines and most models share (the published 128 adds little here)
    "chunk_seconds": 3.0,  # 187 frames; a 10 s clip is scored as 4 chunks
    "epochs": 30,  # the cosine schedule reaches 0 at the last epoch (12 epochs: 0.948, 20: 0.967, 30: 0.972)
    "batch_size": 32,
    "lr": 2e-3,  # higher than the recipe's 1e-3: few epochs, cosine decay
    "schedule": "cosine",
    "pos_weight": "sqrt",  # rare tags weigh more (the NYU fix); PR-AUC +0.006 here, ROC-AUC unchanged
    "max_minutes": 5.0,  # a safety net on a slow or busy machine; about 2.5 min of training on 2 quiet cores
}


def recipe_config(model: str, **overrides: Any) -> TrainConfig:
    """``model`` trained with the CPU recipe and its own registered settings, then ``overrides``.

    A baseline gets its defaults (it has no recipe); unknown names are errors.
    """
    if model in BASELINES:
        return TrainConfig.from_overrides(None, model=model, **overrides)
    from models.registry import get_model_info

    return TrainConfig.from_overrides(None, **{**CPU_RECIPE, "model": model, **get_model_info(model).cpu_recipe,
                                               **overrides})


def demo_train_config(**overrides: Any) -> TrainConfig:
    """The demo's settings: the default model with its CPU recipe (`recipe_config`).

    ``overrides`` replace any field (unknown names are errors), e.g. ``demo_train_config(epochs=2)``.
    """
    from models.registry import default_model

    return recipe_config(default_model(), **overrides)
