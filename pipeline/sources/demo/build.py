"""Building the demo corpus: plan every clip, render the missing mp3s in parallel, write the CSVs.

`build_demo_corpus` is idempotent and resumable: ``demo_corpus.json`` records the build
parameters and its status, a clip whose mp3 exists and decodes is not rendered again, the
mp3s are written atomically and the annotation files last, so a killed build resumes where
it stopped, and a finished one with the same parameters is reused at once.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import pipeline.sources.demo.recipes as R
from pipeline.errors import ParameterError
from pipeline.io import read_json, remove_stale_temps, write_bytes, write_json
from pipeline.sources.corpus import SPLITS
from pipeline.sources.demo.annotate import ANNOTATION_FILES, write_annotation_files
from pipeline.sources.demo.plan import ClipPlan, plan_clip, plan_corpus
from pipeline.sources.demo.render import encode_mp3, mp3_ok, preload, render_clip
from pipeline.sources.mtt_format import ANNOTATIONS_FILE, AUDIO_FOLDERS, DEMO_MANIFEST_FILE
from pipeline.sources.mtt_tags import MTT_TAGS, TOP50_TAGS
from pipeline.workers import die_with_parent

log = logging.getLogger(__name__)

MANIFEST_FILE = DEMO_MANIFEST_FILE  # declared with the format: it also marks a folder as the demo corpus
# Bump when recipes or rendering change, so that audio from an older generator is never reused.
GENERATOR_VERSION = 1


def _complete(manifest: Path, parameters: dict, files: list[Path]) -> bool:
    """Whether ``manifest`` records a finished build with ``parameters`` whose files are all still there."""
    if not manifest.is_file():
        return False
    try:
        record = read_json(manifest)
    except ValueError:
        return False
    return (record.get("status") == "complete" and record.get("parameters") == parameters
            and all(p.is_file() and p.stat().st_size > 0 for p in files))


def _render_job(job: tuple[int, int, float, str, bool]) -> tuple[int, bool]:
    """Worker: render clip ``index`` to ``path`` unless a valid mp3 is already there.

    Returns ``(index, rendered)``.
    """
    seed, index, seconds, path_str, force = job
    path = Path(path_str)
    plan = plan_clip(seed, index, seconds)
    if not force and path.is_file() and mp3_ok(path, plan.n_samples):
        return index, False
    write_bytes(path, encode_mp3(render_clip(plan)))
    return index, True


def _run_jobs(jobs: list[tuple[int, int, float, str, bool]], workers: int, progress: bool) -> int:
    """Render in ``workers`` processes with a progress bar; returns the number rendered."""
    from tqdm import tqdm

    preload()
    rendered = 0
    with contextlib.ExitStack() as stack:
        if workers <= 1 or len(jobs) <= 1:
            results: Iterator[tuple[int, bool]] = map(_render_job, jobs)
        else:
            # fork starts workers in milliseconds on Linux; macOS and Windows only spawn safely. The pool is
            # made before the progress bar, whose monitor thread must not be forked.
            context = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            pool = stack.enter_context(context.Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),)))
            results = pool.imap_unordered(_render_job, jobs, chunksize=4)
        bar = stack.enter_context(tqdm(total=len(jobs), desc="demo corpus", unit="clip", disable=not progress,
                                       dynamic_ncols=True))
        for _, did in results:
            rendered += did
            bar.update()
    return rendered


def _cpu_count() -> int:
    """CPUs this process may use (respects affinity masks, e.g. in containers and under taskset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _validate(clips: int, seconds: float, seed: int, label_dropout: float, workers: int | None) -> None:
    if isinstance(clips, bool) or not isinstance(clips, (int, np.integer)) or clips < 1:
        raise ParameterError(f"clips must be a positive integer, got {clips!r}")
    if not isinstance(seconds, (int, float)) or not 1.0 <= float(seconds) <= 600.0:
        raise ParameterError(f"seconds must be between 1 and 600, got {seconds!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(label_dropout, (int, float)) or not 0.0 <= float(label_dropout) < 1.0:
        raise ParameterError(f"label_dropout must be in [0, 1), got {label_dropout!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise ParameterError(f"workers must be a positive integer or None, got {workers!r}")


def _check_existing(out: Path, seed: int, seconds: float, force: bool) -> None:
    """Refuse to mix audio from different build parameters in one folder."""
    manifest = out / MANIFEST_FILE
    if not manifest.is_file():
        if (out / ANNOTATIONS_FILE).is_file() and not force:
            raise ParameterError(f"out folder {out} holds an {ANNOTATIONS_FILE} but no {MANIFEST_FILE}: "
                                 "it is not a demo corpus; choose an empty folder")
        return
    try:
        old = read_json(manifest)["parameters"]
    except (ValueError, KeyError, OSError) as exc:
        raise ParameterError(f"{manifest}: unreadable demo manifest ({exc}); delete it or the folder") from exc
    if force:
        return
    for key, value in (("seed", seed), ("seconds", float(seconds)), ("generator_version", GENERATOR_VERSION)):
        if old.get(key) != value:
            raise ParameterError(
                f"out folder {out} holds a demo corpus built with {key}={old.get(key)!r}, not {value!r}; "
                "choose another folder, or pass force=True (--force) to re-render every clip")


def build_demo_corpus(out: Path, *, clips: int = 1500, seconds: float = 10.0, seed: int = 0,
                      label_dropout: float = 0.2, workers: int | None = None, progress: bool = True,
                      force: bool = False) -> Path:
    """Build (or complete) the synthesized demo corpus in ``out``; returns ``out``.

    Parameters
    ----------
    out : corpus folder (created; an existing demo corpus with the same seed and seconds is reused)
    clips : number of clips
    seconds : length of each clip in seconds
    seed : everything (arrangements, tags, names, folders, dropout) follows from it
    label_dropout : probability that the annotations omit a true tag (truth.csv keeps it)
    workers : rendering processes (default: CPU count)
    progress : show a progress bar
    force : re-render every clip, even where a valid mp3 exists

    Idempotent and resumable: a clip whose mp3 exists and decodes is not re-rendered; the mp3s
    are written atomically and the CSVs last, so a killed build resumes where it stopped.
    """
    _validate(clips, seconds, seed, label_dropout, workers)
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ParameterError(f"out must be a folder, got a file: {out}")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, recursive=True)  # what a killed build left half-written
    _check_existing(out, seed, seconds, force)
    seconds = float(seconds)
    workers = int(workers or _cpu_count())
    parameters = {"seed": int(seed), "seconds": seconds, "generator_version": GENERATOR_VERSION,
                  "clips": int(clips), "label_dropout": float(label_dropout)}
    manifest = out / MANIFEST_FILE
    t0 = time.perf_counter()
    plans = plan_corpus(clips, seconds, seed)
    expected = [out / p.rel_path for p in plans] + [out / n for n in ANNOTATION_FILES]
    if not force and _complete(manifest, parameters, expected):
        # a finished build with the same parameters: every mp3 was verified when it was written
        log.info("demo corpus in %s is complete (%d clips, seed %d); reusing it", out, len(plans), seed)
        return out
    write_json(manifest, {"status": "building", "parameters": parameters})
    jobs = [(int(seed), p.index, seconds, str(out / p.rel_path), bool(force)) for p in plans]
    rendered = _run_jobs(jobs, min(workers, len(jobs)), progress)
    elapsed = time.perf_counter() - t0

    truth, annotations = write_annotation_files(out, plans, label_dropout)

    planned = {out / p.rel_path for p in plans}
    stale = [p for folder in AUDIO_FOLDERS for p in (out / folder).glob("*.mp3") if p not in planned]
    if stale:
        log.warning("%d mp3s in %s are not part of this corpus (left from a larger or earlier build); the "
                    "annotations ignore them", len(stale), out)

    stats = _stats(plans, truth, annotations, rendered=rendered, elapsed=elapsed)
    write_json(manifest, {"status": "complete", "parameters": parameters, "stats": stats})
    rate = rendered / elapsed if elapsed > 0 and rendered else 0.0
    log.info("demo corpus in %s: %d clips x %.1f s (%.2f h of audio); %d rendered (%.1f clips/s, %d workers), "
             "%d reused, in %.1f s", out, len(plans), seconds, len(plans) * seconds / 3600, rendered, rate, workers,
             len(plans) - rendered, elapsed)
    splits = stats["split_sizes"]
    log.info("tags: %d MTT tags used, %d of MTT's top 50 covered; %d true tag labels, %d annotated "
             "(label dropout %.2f); split train/valid/test = %d/%d/%d", stats["tags_used"], stats["top50_tags_covered"],
             stats["true_tags"], stats["annotated_tags"], label_dropout, splits["train"], splits["valid"],
             splits["test"])
    return out


def _stats(plans: Sequence[ClipPlan], truth: np.ndarray, annotations: np.ndarray, *, rendered: int,
           elapsed: float) -> dict[str, Any]:
    """The build statistics ``demo_corpus.json`` records: tag coverage, label counts, split and genre sizes."""
    used = [t for t, n in zip(MTT_TAGS, truth.sum(axis=0)) if n]
    seconds = plans[0].seconds if plans else 0.0
    return {
        "clips": len(plans), "rendered": int(rendered), "reused": len(plans) - int(rendered),
        "seconds_of_audio": len(plans) * seconds, "build_seconds": round(elapsed, 2),
        "tags_used": len(used), "top50_tags_covered": sum(t in used for t in TOP50_TAGS),
        "missing_top50": [t for t in TOP50_TAGS if t not in used],
        "true_tags": int(truth.sum()), "annotated_tags": int(annotations.sum()),
        "split_sizes": {s: sum(p.split == s for p in plans) for s in SPLITS},
        "recipes": {r.name: sum(p.recipe == r.name for p in plans) for r in R.RECIPES},
    }
