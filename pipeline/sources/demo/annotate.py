"""A demo corpus's annotation files: the true tags, the simulated annotator, the clip info.

``truth.csv`` holds every true tag of each clip; ``annotations_final.csv`` drops each one with
probability ``label_dropout``, as human taggers miss tags; ``clip_info_final.csv`` holds the
names. All three are in MagnaTagATune's exact format (`pipeline.sources.mtt_format`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.sources.demo.plan import DROPOUT_STREAM, ClipPlan, rng_for
from pipeline.sources.mtt_format import (
    ANNOTATIONS_FILE,
    CLIP_INFO_FILE,
    TRUTH_FILE,
    write_annotations,
    write_clip_info,
)
from pipeline.sources.mtt_tags import MTT_TAGS

_TAG_COLUMN = {t: i for i, t in enumerate(MTT_TAGS)}
ANNOTATION_FILES: tuple[str, ...] = (CLIP_INFO_FILE, TRUTH_FILE, ANNOTATIONS_FILE)  # in writing order


def label_matrix(plans: Sequence[ClipPlan]) -> np.ndarray:
    """True tags as a 0/1 matrix over `MTT_TAGS`, shape (n_clips, 188), uint8."""
    labels = np.zeros((len(plans), len(MTT_TAGS)), dtype=np.uint8)
    for row, plan in enumerate(plans):
        labels[row, [_TAG_COLUMN[t] for t in plan.tags]] = 1
    return labels


def sample_annotations(plans: Sequence[ClipPlan], label_dropout: float) -> np.ndarray:
    """Simulated human annotations: each true tag is dropped with probability ``label_dropout``.

    Each (clip, tag) pair has its own uniform draw from the clip's dropout stream, so a higher
    dropout drops a superset of the tags a lower one drops. Returns shape (n_clips, 188), uint8.
    """
    truth = label_matrix(plans)
    draws = np.stack([rng_for(p.seed, p.index, DROPOUT_STREAM).random(len(MTT_TAGS)) for p in plans]) if plans else \
        np.zeros((0, len(MTT_TAGS)))
    return (truth.astype(bool) & (draws >= label_dropout)).astype(np.uint8)


def clip_info(plans: Sequence[ClipPlan]) -> pd.DataFrame:
    """The clip-info table of ``plans``, with MTT's columns."""
    return pd.DataFrame({
        "clip_id": [p.clip_id for p in plans],
        "track_number": [str(p.track_number) for p in plans],
        "title": [p.title for p in plans],
        "artist": [p.artist for p in plans],
        "album": [p.album for p in plans],
        "url": [f"http://demo.example.org/artists/{p.rel_path.split('/')[1].split('-')[0]}" for p in plans],
        "segmentStart": [str(p.segment_start) for p in plans],
        "segmentEnd": [str(p.segment_end) for p in plans],
        "original_url": [f"http://demo.example.org/all/{p.rel_path[2:].rsplit('-', 2)[0]}.mp3" for p in plans],
        "mp3_path": [p.rel_path for p in plans],
    })


def _write_if_changed(path: Path, write: Callable[[Path], None]) -> bool:
    """Write through ``write(staged_path)`` (an atomic writer), then move it onto ``path`` only when the
    bytes differ, so a rerun leaves unchanged files (and their modification times) alone."""
    staged = path.with_name(f".{path.name}.new")
    write(staged)
    if path.is_file() and path.read_bytes() == staged.read_bytes():
        staged.unlink()
        return False
    os.replace(staged, path)
    return True


def write_annotation_files(out: Path, plans: Sequence[ClipPlan], label_dropout: float) -> tuple[np.ndarray, np.ndarray]:
    """Write the clip info, ``truth.csv`` and the annotations of ``plans`` into ``out``.

    Unchanged files are left alone. The annotations come last: their presence marks the folder
    as a complete MTT-format corpus. Returns ``(truth, annotations)``, each [shape=(n, 188), uint8].
    """
    truth = label_matrix(plans)
    annotations = sample_annotations(plans, float(label_dropout))
    ids = [p.clip_id for p in plans]
    paths = [p.rel_path for p in plans]
    _write_if_changed(out / CLIP_INFO_FILE, lambda tmp: write_clip_info(tmp, clip_info(plans)))
    _write_if_changed(out / TRUTH_FILE, lambda tmp: write_annotations(tmp, ids, MTT_TAGS, truth, paths))
    _write_if_changed(out / ANNOTATIONS_FILE, lambda tmp: write_annotations(tmp, ids, MTT_TAGS, annotations, paths))
    return truth, annotations
