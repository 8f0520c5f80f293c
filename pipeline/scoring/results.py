"""What the score stage wrote, read back: the only way evaluate, embed and the tools read scores.

Light (numpy and pandas, no torch), so evaluate and embed never load a network. Each reader
checks the stage is complete and that the file has the rows and columns the score stage
writes; a mismatch is a `RunDirError` naming the file and the command that rebuilds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import RunDirError
from pipeline.run import rundir as rd

STAGE = "score"


def rescore_hint(run: rd.RunDir) -> str:
    """The command that rebuilds a run's score files."""
    return f"python -m pipeline score {run.path} --force"


@dataclass
class Predictions:
    """predictions.parquet as arrays.

    frame : pd.DataFrame  clip_id (str), split, audio_path (relative to the corpus root), ...
    tags : the model's tags (the ``prob:`` columns, in order)
    probs : np.ndarray [shape=(n, k), dtype=float32]
    truth : np.ndarray [shape=(n, k), dtype=uint8]  annotations; 0 in columns the corpus does not label
    labelled : np.ndarray [shape=(k,), dtype=bool]  which tags the corpus labels (a ``true:`` column)
    """

    frame: pd.DataFrame
    tags: list[str]
    probs: np.ndarray
    truth: np.ndarray
    labelled: np.ndarray

    @property
    def clip_ids(self) -> list[str]:
        return self.frame["clip_id"].tolist()

    @property
    def split(self) -> np.ndarray:
        return self.frame["split"].astype(str).to_numpy()

    @property
    def labelled_tags(self) -> list[str]:
        return [t for t, ok in zip(self.tags, self.labelled) if ok]


def score_entry(run: rd.RunDir) -> dict:
    """The score stage's manifest entry; a `RunDirError` unless the stage is complete."""
    run.require(STAGE)
    return run.manifest()["stages"][STAGE]


def read_predictions(run: rd.RunDir) -> Predictions:
    """predictions.parquet of a run whose score stage is complete."""
    score_entry(run)
    path = run / rd.PREDICTIONS
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc}); rerun '{rescore_hint(run)}'") from exc
    tags = [c[len(rd.PROB_PREFIX):] for c in frame.columns if c.startswith(rd.PROB_PREFIX)]
    lacking = [c for c in ("clip_id", "split") if c not in frame.columns]
    if lacking or not tags:
        raise RunDirError(f"{path}: lacks columns {lacking or ['prob:<tag>']}; rerun '{rescore_hint(run)}'")
    frame["clip_id"] = frame["clip_id"].astype(str)
    probs = frame[[rd.prob_column(t) for t in tags]].to_numpy(dtype=np.float32)
    labelled = np.array([rd.true_column(t) in frame.columns for t in tags], dtype=bool)
    truth = np.zeros(probs.shape, dtype=np.uint8)
    for j in np.flatnonzero(labelled):
        truth[:, j] = frame[rd.true_column(tags[j])].to_numpy().astype(np.uint8)
    return Predictions(frame=frame, tags=tags, probs=probs, truth=truth, labelled=labelled)


def read_clip_embeddings(run: rd.RunDir, n_clips: int | None = None) -> np.ndarray:
    """clip_embeddings.npy [n, D] float32 (a memory map), rows aligned with predictions.parquet."""
    score_entry(run)
    path = run / rd.CLIP_EMBEDDINGS
    try:
        embeddings = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc}); rerun '{rescore_hint(run)}'") from exc
    if embeddings.ndim != 2 or (n_clips is not None and len(embeddings) != n_clips):
        raise RunDirError(f"{path}: shape {embeddings.shape}, expected ({n_clips}, D); rerun '{rescore_hint(run)}'")
    return embeddings


def read_output_weights(run: rd.RunDir) -> np.ndarray | None:
    """output_weights.npy [n_tags, D] (the output layer's rows), or None for a run without one (a baseline)."""
    entry = score_entry(run)
    if rd.OUTPUT_WEIGHTS not in entry.get("files", []):
        return None
    path = run / rd.OUTPUT_WEIGHTS
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc}); rerun '{rescore_hint(run)}'") from exc
