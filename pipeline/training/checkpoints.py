"""Training's files in a run directory: checkpoints, history, a source run's weights.

A checkpoint is a dict of plain types and tensors (``torch.load(weights_only=True)`` reads it):
``checkpoint.pt`` the best epoch on validation macro ROC-AUC, ``last.pt`` the latest, with the
optimiser, schedule and early-stopping state for ``--resume``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.errors import ParameterError, RunDirError
from pipeline.io import atomic_path
from pipeline.run.rundir import (
    BASELINE_FILE,
    HISTORY,
    LAST_CHECKPOINT,
    MANIFEST,
    STAGE_FILES,
    TABLES,
    TENSORBOARD,
    RunDir,
)
from pipeline.scoring.inference import load_checkpoint

HISTORY_COLUMNS: tuple[str, ...] = TABLES[HISTORY].column_names  # declared by the run contract


def plain(obj: Any) -> Any:
    """Numpy values and arrays -> Python ones, recursively (for JSON and weights-only checkpoints)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def prepare_run_dir(out_dir: Path, *, resume: bool, force: bool) -> RunDir:
    """Check what ``out_dir`` holds against ``resume`` / ``force`` (main process only).

    A complete run is never overwritten without ``force``; a partial one (``last.pt`` but no
    finished train stage) needs ``resume`` or ``force``.
    """
    run = RunDir(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"--out {out_dir} exists and is not a directory")
    run.start_writing()
    if force and not resume:
        for name in {MANIFEST, HISTORY, BASELINE_FILE, *(f for files in STAGE_FILES.values() for f in files)}:
            path = out_dir / name
            if path.is_file():
                path.unlink()
        if (out_dir / TENSORBOARD).is_dir():
            shutil.rmtree(out_dir / TENSORBOARD)
        return run
    if resume:
        return run
    if run.stage_done("train"):
        raise RunDirError(f"{out_dir} already holds a trained run; pass --force to train it again from scratch "
                          f"(its files are replaced) or choose another --out")
    if (out_dir / LAST_CHECKPOINT).is_file():
        raise RunDirError(f"{out_dir} holds an unfinished run ({LAST_CHECKPOINT}); pass --resume to continue it "
                          f"or --force to start again")
    return run


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """Write a checkpoint dict through a temporary file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def source_path(init_from: str) -> Path:
    """The run directory or ``.pt`` file ``init_from`` names: a path, or the name of a pretrained run.

    A name that is no path is a published model converted into a ready run (``mtt_musicnn``,
    ...: `pipeline.pretrained.build.run_or_pretrained`, which converts it first if needed).
    """
    from pipeline.pretrained.build import run_or_pretrained

    path = run_or_pretrained(Path(init_from).expanduser())
    if path.exists():
        return path
    raise ParameterError(f"init_from: no run directory or checkpoint at {path} (nor a published model's name)")


def load_source_checkpoint(init_from: str) -> dict[str, Any]:
    """The checkpoint ``init_from`` names (`source_path`): a run directory's best checkpoint, or a ``.pt`` file."""
    path = source_path(init_from)
    return load_checkpoint(path) if path.is_dir() else load_checkpoint(path.parent, path.name)


def transfer_weights(model: nn.Module, source: dict[str, Any], tags: list[str], *,
                     copy_shared: bool = True) -> dict[str, int]:
    """Load a source checkpoint's weights into ``model``; the output layer is rebuilt for ``tags``.

    With ``copy_shared``, rows of the output layer whose tag name exists in the source are
    copied; the others (all, without it) keep their fresh initialisation. Returns counts of
    what was carried over.
    """
    state = source["state_dict"]
    body = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        missing, unexpected = model.load_state_dict(body, strict=False)
    except RuntimeError as exc:  # a tensor of another shape: another architecture or size than the source's
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise ParameterError(f"init_from: source weights do not fit model {source['model_name']!r} "
                             f"({first})") from None
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise ParameterError(f"init_from: source weights do not fit model {source['model_name']!r} "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    src_tags = list(source["tags"])
    shared = [(i, src_tags.index(t)) for i, t in enumerate(tags) if t in src_tags] if copy_shared else []
    classifier: nn.Linear = model.classifier  # type: ignore[assignment]
    if "classifier.weight" in state and state["classifier.weight"].shape[1] == classifier.in_features:
        with torch.no_grad():
            for new, old in shared:
                classifier.weight[new] = state["classifier.weight"][old]
                classifier.bias[new] = state["classifier.bias"][old]
    return {"tensors": len(body), "shared_tags": len(shared), "new_tags": len(tags) - len(shared)}


def write_history(run: RunDir, rows: list[dict[str, Any]]) -> None:
    """``history.csv``: one row per epoch (`HISTORY_COLUMNS`)."""
    run.write_table(HISTORY, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)))


def read_history(run: RunDir, upto_epoch: int) -> list[dict[str, Any]]:
    """The history rows of epochs ``<= upto_epoch`` (those a resumed run keeps)."""
    path = run / HISTORY
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return [dict(r) for r in frame[frame["epoch"] <= upto_epoch].to_dict("records")]
