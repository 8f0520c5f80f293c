"""A converted model against the original musicnn's own outputs on the same audio file.

The reference is an ``.npz`` written by the original (scripts/musicnn_reference.py): the
per-3-second-patch ``taggram`` (sigmoid outputs), the ``penultimate`` embedding of every patch
and the ``tags``. `compare` runs the toolkit's whole path (decode, log-mel, chunking as
musicnn batches, the converted network) and reports how far it is from the reference; the
conversion tests and ``python -m benchmarks agreement`` both call it. The chunking, the network
call and the sigmoid are the scoring pass's own functions (`pipeline.scoring.chunks`,
`RunModel.net`), whose patch mean is the clip score the score stage and the taggers give.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Agreement:
    """How a converted model's outputs on one file differ from the original's."""

    n_patches: int
    taggram_max_abs: float  # over every patch and tag
    mean_max_abs: float  # of the clip's mean over patches
    penultimate_max_abs: float
    penultimate_scale: float  # the largest |value| of the original's penultimate layer
    top5: tuple[str, ...]
    top5_original: tuple[str, ...]

    @property
    def top5_equal(self) -> bool:
        return self.top5 == self.top5_original


def read_reference(path: str | Path) -> dict[str, np.ndarray]:
    """taggram, penultimate and tags of a reference file (plain arrays: no pickle)."""
    with np.load(path, allow_pickle=False) as ref:
        return {k: ref[k] for k in ("taggram", "penultimate", "tags")}


def compare(model_folder: str | Path, audio: str | Path, reference: str | Path) -> Agreement:
    """Score ``audio`` with the converted model in ``model_folder`` and compare with ``reference``."""
    from pipeline.scoring.chunks import chunk_clip, sigmoid
    from pipeline.scoring.inference import load_run

    ref = read_reference(reference)
    run_model = load_run(model_folder)
    if run_model.tags != [str(t) for t in ref["tags"]]:
        raise ValueError(f"{reference}: its tags are not the model's")
    features = run_model.features_of(Path(audio))
    patches = chunk_clip(features, run_model.chunk_frames, normalizer=run_model.normalizer,
                         tail=run_model.chunk_tail)
    assert run_model.net is not None
    embeddings, logits = run_model.net.embed_logits(patches)
    taggram = sigmoid(logits)
    if taggram.shape != ref["taggram"].shape:
        raise ValueError(f"{audio}: {len(taggram)} patches, the original had {len(ref['taggram'])}")
    tags = run_model.tags

    def top5(values: np.ndarray) -> tuple[str, ...]:
        return tuple(tags[i] for i in np.argsort(-values)[:5])

    return Agreement(
        n_patches=len(taggram), taggram_max_abs=float(np.abs(taggram - ref["taggram"]).max()),
        mean_max_abs=float(np.abs(taggram.mean(0) - ref["taggram"].mean(0)).max()),
        penultimate_max_abs=float(np.abs(embeddings - ref["penultimate"]).max()),
        penultimate_scale=float(np.abs(ref["penultimate"]).max()),
        top5=top5(taggram.mean(0)), top5_original=top5(ref["taggram"].mean(0)),
    )
