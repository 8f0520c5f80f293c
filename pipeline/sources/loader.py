"""Loading a corpus folder: detect its source, read its raw annotations, apply label processing.

The one entry point from a folder to a `Corpus`; it sits above the sources and the label
processing, so the dependencies run one way: corpus (types) <- sources (mtt_format, folder)
<- labels <- loader.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.errors import DataFormatError, ParameterError
from pipeline.sources.corpus import SOURCES, Corpus, LabelConfig, RawAnnotations
from pipeline.sources.folder import read_folder
from pipeline.sources.labels import process
from pipeline.sources.mtt_format import ANNOTATIONS_FILE, is_demo_corpus, read_mtt_corpus


def detect_source(root: Path) -> str:
    """Guess a corpus folder's source: MTT's annotation file, else a plain folder of audio."""
    if (root / ANNOTATIONS_FILE).is_file():
        return "mtt"
    return "folder"


def load_corpus(root: str | Path, labels: LabelConfig | None = None, *, source: str = "auto",
                tags_csv: str | Path | None = None) -> Corpus:
    """Load the corpus in ``root`` and apply label processing.

    Parameters
    ----------
    root : folder of an MTT-format corpus (real MagnaTagATune or the demo) or of plain audio
    labels : label processing (synonyms, top-N, untagged clips, split); defaults per kind of corpus
        (`pipeline.sources.corpus.LABEL_DEFAULTS`: MagnaTagATune's literature protocol, the demo's
        merged synonyms, a folder's tags as they are)
    source : ``"auto"``, ``"mtt"`` or ``"folder"``
    tags_csv : for a folder source, an optional CSV of tags (see `pipeline.sources.folder`)

    Returns
    -------
    Corpus whose ``label_config`` is the resolved config applied (``labels.resolved(source, demo=...)``):
    ``merge_synonyms`` and ``drop_untagged`` True or False, ``split`` "folder", "random" or "file".
    An MTT-format folder holding the demo's build record (`is_demo_corpus`) is the demo corpus.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ParameterError(f"corpus folder does not exist: {root}")
    if source == "auto":
        source = detect_source(root)
    if source not in SOURCES:
        raise ParameterError(f"source must be 'auto', 'mtt' or 'folder', got {source!r}")
    raw: RawAnnotations = read_mtt_corpus(root) if source == "mtt" else read_folder(root, tags_csv=tags_csv)
    if not raw.clip_ids:
        raise DataFormatError(f"{root}: no clips found")
    demo = source == "mtt" and is_demo_corpus(root)
    return process(raw, labels or LabelConfig(), name=root.name, root=root, source=source, demo=demo)


def labels_from_record(record: dict[str, Any]) -> LabelConfig:
    """The resolved `LabelConfig` of a manifest's ``corpus`` record (`corpus_record`).

    Records written before the config was stored resolved hold ``merge_synonyms: null`` and
    ``split: "auto"``; they are resolved here by the rule of their time, when synonyms were
    merged for every MTT-format corpus and untagged clips kept, so such a run reloads the
    vocabulary it was trained on.
    """
    source = record.get("source")
    if source not in SOURCES:
        raise DataFormatError(f"corpus record: source must be one of {SOURCES}, got {source!r}")
    try:
        config = LabelConfig(**record.get("labels", {}))
    except TypeError as exc:  # an unknown field
        raise DataFormatError(f"corpus record: bad labels {record.get('labels')!r}: {exc}") from None
    legacy = {"merge_synonyms": source == "mtt", "drop_untagged": False}  # the defaults before LABEL_DEFAULTS
    config = replace(config, **{k: v for k, v in legacy.items() if getattr(config, k) is None})
    return config.resolved(source)


def corpus_from_record(record: dict[str, Any]) -> Corpus:
    """Reload the corpus a run was trained on from its manifest's ``corpus`` record (`corpus_record`)."""
    return load_corpus(record["root"], labels_from_record(record), source=record["source"])
