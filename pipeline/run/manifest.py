"""manifest.json as a dataclass: what a run is, what it was built from, which stages are done.

On disk a manifest is one JSON object (`Manifest.to_dict`); `Manifest.from_dict` validates
one read from a run folder, which is untrusted input: a value of the wrong shape (``[]``,
``"stages": []``, a number where a name belongs) is a `RunDirError` naming the field, what was
expected and what was found, never a ``KeyError`` or ``AttributeError`` further on.

A manifest grows while a run is built (train writes the corpus and model first, each later
stage adds its entry), so every field but the schema version and the name may be absent.
Keys this version does not know are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import RunDirError
from pipeline.run.files import MANIFEST, SCHEMA_VERSION, SCORE_STAGE, SKIPPED, validate_corrections
from pipeline.run.metrics import Metrics

_JSON_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "an object"}


def _type_name(value: Any) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _check(value: Any, kinds: tuple[type, ...], where: str, key: str, *, optional: bool = True) -> Any:
    """``value`` when it is one of ``kinds`` (bool is never a number), else a `RunDirError`."""
    if value is None and optional:
        return None
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        expected = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
        raise RunDirError(f"{where}: {key} should be {expected}, found {_type_name(value)} {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _str_list(value: Any, where: str, key: str) -> list[str] | None:
    _check(value, (list,), where, key)
    if value is not None and not all(isinstance(v, str) for v in value):
        bad = next(v for v in value if not isinstance(v, str))
        raise RunDirError(f"{where}: {key} should be a list of strings, found {_type_name(bad)} {_short(bad)} in it")
    return value


def _count_map(value: Any, where: str, key: str) -> dict[str, int] | None:
    _check(value, (dict,), where, key)
    if value is not None:
        for k, v in value.items():
            _check(v, (int,), where, f"{key}.{k}", optional=False)
    return value


@dataclass
class CorpusRecord:
    """The corpus a run was built from, enough to reload it (`pipeline.sources.corpus.corpus_from_record`).

    ``root`` is absolute, or relative to the data root (`pipeline.paths.data_root`); a moved
    corpus is re-pointed with ``$MUSICTAG_CORPUS_ROOT`` (`pipeline.run.locate`).
    """

    name: str
    root: str
    source: str = "auto"  # mtt / folder / demo / synthetic ...
    labels: dict[str, Any] = field(default_factory=dict)  # the label config (pipeline.sources.labels.LabelConfig)
    n_clips: int | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> CorpusRecord:
        _check(obj, (dict,), where, "corpus", optional=False)
        name = _check(obj.get("name"), (str,), where, "corpus.name", optional=False)
        root = _check(obj.get("root"), (str,), where, "corpus.root", optional=False)
        source = _check(obj.get("source", "auto"), (str,), where, "corpus.source", optional=False)
        labels = _check(obj.get("labels", {}), (dict,), where, "corpus.labels", optional=False)
        for key, kinds in (("merge_synonyms", (bool,)), ("top_n", (int,)), ("drop_untagged", (bool,)),
                           ("split", (str,)), ("seed", (int,)), ("ratios", (list,))):
            _check(labels.get(key), kinds, where, f"corpus.labels.{key}")
        n_clips = _check(obj.get("n_clips"), (int,), where, "corpus.n_clips")
        sizes = _count_map(obj.get("split_sizes", {}), where, "corpus.split_sizes") or {}
        return cls(name, root, source, dict(labels), n_clips, dict(sizes))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "root": self.root, "source": self.source, "labels": self.labels,
                "n_clips": self.n_clips, "split_sizes": self.split_sizes}


@dataclass
class ModelRecord:
    """The model a run holds: its registered name and keyword arguments, and what it expects as input."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    params: int | None = None  # trainable parameters (None for a classical baseline)
    kind: str = "network"  # network / baseline / synthetic
    chunk_frames: int | None = None  # input frames per forward pass (the input spec, with `Manifest.features`)
    chunk_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> ModelRecord:
        _check(obj, (dict,), where, "model", optional=False)
        known = {"name", "kwargs", "params", "kind", "chunk_frames", "chunk_seconds"}
        return cls(name=_check(obj.get("name"), (str,), where, "model.name", optional=False),
                   kwargs=_check(obj.get("kwargs", {}), (dict,), where, "model.kwargs", optional=False),
                   params=_check(obj.get("params"), (int,), where, "model.params"),
                   kind=_check(obj.get("kind", "network"), (str,), where, "model.kind", optional=False),
                   chunk_frames=_check(obj.get("chunk_frames"), (int,), where, "model.chunk_frames"),
                   chunk_seconds=_check(obj.get("chunk_seconds"), (int, float), where, "model.chunk_seconds"),
                   extra={k: v for k, v in obj.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": self.kwargs, "params": self.params, "kind": self.kind,
                "chunk_frames": self.chunk_frames, "chunk_seconds": self.chunk_seconds, **self.extra}


@dataclass
class StageState:
    """One finished stage: when, the files it wrote (all must exist) and what it reports (``info``).

    On disk the entry is flat: ``{"finished": ..., "files": [...], **info}``.
    """

    finished: str
    files: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, obj: Any, where: str, stage: str) -> StageState:
        _check(obj, (dict,), where, f"stages.{stage}", optional=False)
        finished = _check(obj.get("finished"), (str,), where, f"stages.{stage}.finished", optional=False)
        files = _str_list(obj.get("files"), where, f"stages.{stage}.files")
        if files is None:
            raise RunDirError(f"{where}: stages.{stage}.files should be a list of file names, found null")
        for name in files:  # file names stay inside the run folder
            if not name or Path(name).name != name or name in (".", ".."):
                raise RunDirError(f"{where}: stages.{stage}.files should name files of the run folder, "
                                  f"found {name!r}")
        return cls(finished, list(files), {k: v for k, v in obj.items() if k not in ("finished", "files")})

    def to_dict(self) -> dict[str, Any]:
        return {"finished": self.finished, "files": list(self.files), **self.info}

    @property
    def skipped(self) -> str | None:
        """Why the stage computed nothing (``info["skipped"]``, see `pipeline.run.files.SKIPPED`), else None."""
        reason = self.info.get(SKIPPED)
        return reason if isinstance(reason, str) and reason else None


@dataclass
class Manifest:
    """manifest.json: what the run is and which stages are done (see the module docstring)."""

    name: str
    schema_version: int = SCHEMA_VERSION
    corpus: CorpusRecord | None = None
    tags: list[str] | None = None  # the vocabulary, in the column order of every per-tag file
    split_sizes: dict[str, int] = field(default_factory=dict)  # clips per split used for training
    model: ModelRecord | None = None
    features: dict[str, Any] | None = None  # pipeline.features.extract.FeatureConfig.to_dict()
    config: dict[str, Any] | None = None  # the resolved training config (pipeline.training.train.TrainConfig)
    training: dict[str, Any] | None = None  # epochs run, best epoch and score, seconds
    device: dict[str, Any] | None = None
    metrics: Metrics | None = None  # the headline figures of the evaluate stage
    stages: dict[str, StageState] = field(default_factory=dict)
    synthetic: bool = False  # benchmark / development data, not a result
    description: str | None = None
    # where a converted published model came from: distribution, file SHA-256, licence, authors
    provenance: dict[str, Any] | None = None
    # a run fine-tuned from another: the level, the source (and its provenance), frozen / trained blocks
    transfer: dict[str, Any] | None = None
    # the verdicts the training labels were corrected with (train --corrections): `files.CORRECTIONS_KEYS`
    corrections: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not declare

    # -- reading -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, obj: Any, *, where: str | Path = MANIFEST) -> Manifest:
        """Validate a manifest read from disk (see the module docstring)."""
        where = str(where)
        if not isinstance(obj, dict):
            raise RunDirError(f"{where}: expected a JSON object, found {_type_name(obj)}")
        version = obj.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunDirError(f"{where}: schema version {version!r}, this toolkit reads {SCHEMA_VERSION}")
        name = _check(obj.get("name"), (str,), where, "name", optional=False)
        stages_obj = _check(obj.get("stages", {}), (dict,), where, "stages", optional=False)
        stages = {str(s): StageState.from_dict(e, where, s) for s, e in stages_obj.items()}
        metrics = obj.get("metrics")
        if metrics is not None:
            _check(metrics, (dict,), where, "metrics")
            metrics = Metrics.from_dict(metrics, where=f"{where}: metrics")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            name=name, schema_version=version,
            corpus=CorpusRecord.from_dict(obj["corpus"], where) if obj.get("corpus") is not None else None,
            tags=_str_list(obj.get("tags"), where, "tags"),
            split_sizes=_count_map(obj.get("split_sizes", {}), where, "split_sizes") or {},
            model=ModelRecord.from_dict(obj["model"], where) if obj.get("model") is not None else None,
            features=_check(obj.get("features"), (dict,), where, "features"),
            config=_check(obj.get("config"), (dict,), where, "config"),
            training=_check(obj.get("training"), (dict,), where, "training"),
            device=_check(obj.get("device"), (dict,), where, "device"),
            metrics=metrics, stages=stages,
            synthetic=bool(_check(obj.get("synthetic", False), (bool,), where, "synthetic", optional=False)),
            description=_check(obj.get("description"), (str,), where, "description"),
            provenance=_check(obj.get("provenance"), (dict,), where, "provenance"),
            transfer=_check(obj.get("transfer"), (dict,), where, "transfer"),
            corrections=(validate_corrections(obj["corrections"], where=where)
                         if obj.get("corrections") is not None else None),
            extra={k: v for k, v in obj.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to manifest.json (absent fields left out)."""
        out: dict[str, Any] = {"schema_version": self.schema_version, "name": self.name}
        optional = {"corpus": self.corpus.to_dict() if self.corpus else None, "tags": self.tags,
                    "split_sizes": self.split_sizes or None,
                    "model": self.model.to_dict() if self.model else None, "features": self.features,
                    "config": self.config, "training": self.training, "device": self.device,
                    "metrics": self.metrics.to_dict() if self.metrics else None,
                    "synthetic": self.synthetic or None, "description": self.description,
                    "provenance": self.provenance, "transfer": self.transfer,
                    "corrections": self.corrections}
        out.update({k: v for k, v in optional.items() if v is not None})
        out.update(self.extra)
        out["stages"] = {s: e.to_dict() for s, e in self.stages.items()}
        return out

    # -- questions pages ask ------------------------------------------------------------------
    def stage(self, name: str) -> StageState | None:
        return self.stages.get(name)

    def taggram_fps(self) -> float | None:
        """Taggram frames per second: the score stage's ``info["taggram"]["fps"]`` (None when not recorded)."""
        entry = self.stages.get(SCORE_STAGE)
        plan = entry.info.get("taggram") if entry else None
        fps = plan.get("fps") if isinstance(plan, dict) else None
        return float(fps) if isinstance(fps, int | float) and not isinstance(fps, bool) and fps > 0 else None
