"""The schema of metrics.json: what the evaluate stage writes and every reader expects.

``headline`` holds the six AUCs (`HEADLINE_AUCS`: ROC-AUC and PR-AUC, each macro, micro and
weighted over tags) plus F1 figures; ``ci95`` a bootstrap 95% interval ``[low, high]`` of each
AUC. NaN is stored as null (JSON has no NaN) and read back as NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import RunDirError
from pipeline.run.files import METRICS, validate_corrections

METRIC_NAMES: dict[str, str] = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC"}  # key -> display name
AVERAGES: tuple[str, ...] = ("macro", "micro", "weighted")
HEADLINE_AUCS: tuple[str, ...] = tuple(f"{m}_{a}" for m in METRIC_NAMES for a in AVERAGES)
F1_FIGURES: tuple[str, ...] = ("f1_macro", "f1_micro", "f1_macro_tuned", "f1_micro_tuned")  # at 0.5 / tuned


def _number(value: Any, where: str, key: str) -> float:
    """A JSON number (null is NaN); anything else is a `RunDirError` naming ``key``."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RunDirError(f"{where}: {key} should be a number or null, found {type(value).__name__} {value!r}")
    return float(value)


def _plain(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass
class Metrics:
    """metrics.json as a typed record (`read` / `to_dict` convert; NaN for undefined figures)."""

    split: str  # the split evaluated
    headline: dict[str, float]  # every `HEADLINE_AUCS` key, plus `F1_FIGURES` where computed
    ci95: dict[str, tuple[float, float]]  # every `HEADLINE_AUCS` key: bootstrap 95% interval
    n_clips: int = 0  # clips evaluated
    n_tags: int = 0
    n_bootstrap: int = 0  # resamples behind ci95 (0: the intervals are NaN)
    undefined_tags: list[str] = field(default_factory=list)  # tags without a positive or a negative clip
    aggregate: str | None = None  # how chunk probabilities became a clip's (mean / max)
    bootstrap_seed: int | None = None
    thresholds_tuned_on: str | None = None  # split the per-tag thresholds were tuned on (None: 0.5)
    checkpoint_epoch: int | None = None
    model: str | None = None
    synthetic: bool = False  # benchmark data, not a result
    # the verdicts the truth was corrected with (evaluate --corrections; `files.CORRECTIONS_KEYS`); None: the
    # annotations as they are
    corrections: dict[str, Any] | None = None

    def value(self, name: str) -> float:
        """A headline figure (``roc_auc_macro`` ...), NaN when absent."""
        return self.headline.get(name, math.nan)

    def interval(self, name: str) -> tuple[float, float]:
        """The 95% interval of a headline AUC, (NaN, NaN) when absent."""
        return self.ci95.get(name, (math.nan, math.nan))

    def headline_rows(self) -> list[dict[str, Any]]:
        """One row per AUC: metric (display name), average, value, low, high."""
        rows = []
        for metric, label in METRIC_NAMES.items():
            for average in AVERAGES:
                name = f"{metric}_{average}"
                low, high = self.interval(name)
                rows.append({"metric": label, "average": average, "value": self.value(name), "low": low,
                             "high": high})
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (NaN as null), the layout of metrics.json."""
        out = asdict(self)
        out["headline"] = {k: _plain(v) for k, v in self.headline.items()}
        out["ci95"] = {k: [_plain(lo), _plain(hi)] for k, (lo, hi) in self.ci95.items()}
        if out["corrections"] is None:  # metrics against the annotations as they are: the file as it always was
            del out["corrections"]
        return out

    @classmethod
    def from_evaluation(cls, evaluation: Any, *, split: str, **fields: Any) -> Metrics:
        """From a `pipeline.analysis.metrics.Evaluation` (its ``to_dict``) and the run's own fields."""
        return cls.from_dict({"split": split, **evaluation.to_dict(), **fields})

    @classmethod
    def from_dict(cls, obj: Any, *, where: str | Path = METRICS) -> Metrics:
        """Validate ``obj`` (metrics.json's content); a wrong shape is a `RunDirError` naming the key."""
        where = str(where)
        if not isinstance(obj, dict):
            raise RunDirError(f"{where}: expected a JSON object, found {type(obj).__name__}")
        unknown = sorted(set(obj) - set(cls.__dataclass_fields__))
        if unknown:
            raise RunDirError(f"{where}: unknown key(s) {', '.join(unknown)}; expected "
                              f"{', '.join(cls.__dataclass_fields__)}")
        split = obj.get("split")
        if not isinstance(split, str):
            raise RunDirError(f"{where}: split should be a string, found {split!r}")
        headline, ci = obj.get("headline"), obj.get("ci95")
        if not isinstance(headline, dict):
            raise RunDirError(f"{where}: headline should be an object of figures, found {type(headline).__name__}")
        if not isinstance(ci, dict):
            raise RunDirError(f"{where}: ci95 should be an object of [low, high] pairs, found {type(ci).__name__}")
        missing = [k for k in HEADLINE_AUCS if k not in headline]
        if missing:
            raise RunDirError(f"{where}: headline lacks {', '.join(missing)}")
        values = {str(k): _number(v, where, f"headline.{k}") for k, v in headline.items()}
        intervals: dict[str, tuple[float, float]] = {}
        for key in HEADLINE_AUCS:
            pair = ci.get(key)
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise RunDirError(f"{where}: ci95.{key} should be [low, high], found {pair!r}")
            intervals[key] = (_number(pair[0], where, f"ci95.{key}[0]"), _number(pair[1], where, f"ci95.{key}[1]"))
        fields: dict[str, Any] = {}
        for key, kind in (("n_clips", int), ("n_tags", int), ("n_bootstrap", int), ("bootstrap_seed", int),
                          ("checkpoint_epoch", int), ("aggregate", str), ("thresholds_tuned_on", str),
                          ("model", str), ("synthetic", bool)):
            if key in obj and obj[key] is not None:
                value = obj[key]
                if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                    raise RunDirError(f"{where}: {key} should be {kind.__name__}, found {value!r}")
                fields[key] = value
        undefined = obj.get("undefined_tags", [])
        if not isinstance(undefined, list) or not all(isinstance(t, str) for t in undefined):
            raise RunDirError(f"{where}: undefined_tags should be a list of tag names, found {undefined!r}")
        if obj.get("corrections") is not None:
            fields["corrections"] = validate_corrections(obj["corrections"], where=where)
        return cls(split=split, headline=values, ci95=intervals, undefined_tags=list(undefined), **fields)
