"""The feature cache: every clip's features computed once, laid out for fast random access.

Caches live in the project's data root, never in the corpus folder (a user's music folder
may be read-only, shared, or simply not ours to write into)::

    <data root>/cache/<corpus folder name>-<hash of its resolved path>/<config key>/

(`pipeline.paths.data_root`, ``$MUSICTAG_DATA``; ``cache_root`` replaces ``<data root>/cache``).
The hash tells apart two folders of the same name; for a corpus inside the data root it is
taken of the path relative to the data root, so moving the whole data root keeps its caches.

Layout of a cache directory::

    data.npy        float16 [total_frames, n_bins]: all clips stacked along time (memory-mapped)
    index.parquet   clip_id, path, offset, n_frames, source: the rows of data.npy per clip
    failures.csv    clip_id, path, reason, source: the report of files that could not be used
    config.json     the FeatureConfig, the corpus it was built from, counts (written last but one)
    complete        stamp written last; a directory without it is an unfinished build
    parts/          during a build only: per finished shard of clips, ``<name>.npy`` (their
                    frames) and ``<name>.json`` (their sources, lengths and decode failures),
                    so a killed build resumes where it stopped

The directory name is `FeatureConfig.key`, a hash of every feature parameter, so a change
of parameters never reuses a stale cache. ``source`` is a hash of the clip id, its audio
path and the file's size and modification time: a cache is reused only for clips whose
audio is unchanged, and a rebuild recomputes only new or changed clips.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ParameterError, PipelineError
from pipeline.features.audio import AudioFileError, load_audio
from pipeline.features.extract import FeatureConfig
from pipeline.features.float16 import cache_features
from pipeline.io import (
    atomic_path,
    check_folder_path,
    pid_alive,
    read_json,
    remove_stale_temps,
    write_csv,
    write_json,
    write_parquet,
    write_text,
)
from pipeline.paths import DATA_ENV, corpus_key, data_root
from pipeline.sources.corpus import Corpus
from pipeline.workers import die_with_parent

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DATA = "data.npy"
INDEX = "index.parquet"
FAILURES = "failures.csv"
CONFIG = "config.json"
COMPLETE = "complete"
PARTS = "parts"
SHARD_CLIPS = 32  # most clips in one part file
CACHE_FOLDER = "cache"  # under the data root: the default cache root
UNEXPECTED = "error"  # reason prefix of an unexpected exception: not cached, so retried by the next build
DISCARD_PREFIX = ".discard-"  # beside the caches of a corpus: a finished build's parts, being deleted (_discard)


class FeatureCacheError(PipelineError):
    """A feature cache is missing, unfinished or inconsistent, or lacks a requested clip."""


def default_cache_root() -> Path:
    """``<data root>/cache``: where feature caches go unless told otherwise."""
    return data_root() / CACHE_FOLDER


def cache_dir(corpus: Corpus, config: FeatureConfig, cache_root: Path | None = None) -> Path:
    """Where the cache of ``corpus`` with ``config`` lives.

    ``<cache root>/<corpus_key(corpus.root)>/<config.key()>``; the cache root is
    ``cache_root`` or `default_cache_root` (one root serves every corpus). Never inside the corpus.
    """
    base = default_cache_root() if cache_root is None else Path(cache_root).expanduser()
    return base / corpus_key(corpus.root) / config.key()


def source_signature(clip_id: str, rel_path: str, path: Path) -> str:
    """A short hash of a clip's id, audio path, and the file's size and modification time."""
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime = -1, -1
    return hashlib.sha1(f"{clip_id}\0{rel_path}\0{size}\0{mtime}".encode()).hexdigest()[:16]


class FeatureCache:
    """Read access to a finished feature cache (see the module docstring for the layout).

    Attributes
    ----------
    directory : Path
    config : FeatureConfig
    corpus_name : str
    clip_ids : list[str]  clips that decoded fine, in corpus order
    index : pd.DataFrame  clip_id, path, offset, n_frames, source
    failures : pd.DataFrame  clip_id, path, reason, source (the clips left out)
    """

    def __init__(self, directory: Path, config: FeatureConfig, index: pd.DataFrame, failures: pd.DataFrame,
                 corpus_name: str = "") -> None:
        self.directory = Path(directory)
        self.config = config
        self.corpus_name = corpus_name
        self.index = index.reset_index(drop=True)
        self.failures = failures.reset_index(drop=True)
        self.clip_ids: list[str] = self.index["clip_id"].tolist()
        offsets = self.index["offset"].to_numpy(np.int64)
        lengths = self.index["n_frames"].to_numpy(np.int64)
        self._rows: dict[str, tuple[int, int]] = {c: (int(o), int(n)) for c, o, n in zip(self.clip_ids, offsets, lengths)}
        self.total_frames = int(lengths.sum())
        self._data: np.ndarray | None = None

    @classmethod
    def open(cls, directory: Path | str) -> FeatureCache:
        """Open a finished cache; `FeatureCacheError` if it is missing, unfinished or inconsistent."""
        directory = Path(directory)
        hint = "build or resume it with 'python -m pipeline features CORPUS_DIR'"
        if not directory.is_dir():
            raise FeatureCacheError(f"{directory}: no feature cache here; {hint}")
        if not (directory / COMPLETE).is_file():
            raise FeatureCacheError(f"{directory}: unfinished feature cache (no '{COMPLETE}' stamp: its build was "
                                    f"interrupted or is still running); {hint}")
        missing = [name for name in (CONFIG, INDEX, DATA, FAILURES) if not (directory / name).is_file()]
        if missing:
            raise FeatureCacheError(f"{directory}: feature cache lacks {', '.join(missing)}; {hint}")
        meta = read_json(directory / CONFIG)
        if meta.get("cache_version") != CACHE_VERSION:
            raise FeatureCacheError(f"{directory}/{CONFIG}: cache_version {meta.get('cache_version')!r}, "
                                    f"this code reads {CACHE_VERSION}; {hint}")
        config = FeatureConfig.from_dict(meta["features"])
        index = pd.read_parquet(directory / INDEX)
        failures = pd.read_csv(directory / FAILURES, dtype=str, keep_default_na=False)
        cache = cls(directory, config, index, failures, corpus_name=meta.get("corpus", {}).get("name", ""))
        data = cache.data
        if data.shape != (cache.total_frames, config.n_bins) or data.dtype != np.float16:
            raise FeatureCacheError(f"{directory}/{DATA}: shape {data.shape} {data.dtype}, but the index needs "
                                    f"({cache.total_frames}, {config.n_bins}) float16; {hint}")
        return cache

    @property
    def data(self) -> np.ndarray:
        """All frames [shape=(total_frames, n_bins), dtype=float16], memory-mapped read-only."""
        if self._data is None:
            if self.total_frames == 0:  # an empty file cannot be memory-mapped
                self._data = np.zeros((0, self.config.n_bins), dtype=np.float16)
            else:
                self._data = np.load(self.directory / DATA, mmap_mode="r")
        return self._data

    def __getstate__(self) -> dict[str, Any]:
        # Data-loader workers get the small index; each maps data.npy itself (pickling a
        # memmap would copy the whole array).
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._rows

    def __repr__(self) -> str:
        return (f"FeatureCache({str(self.directory)!r}, {self.config.key()}, {len(self)} clips, "
                f"{len(self.failures)} failures)")

    def _row(self, clip_id: str) -> tuple[int, int]:
        try:
            return self._rows[clip_id]
        except KeyError:
            failed = self.failures.loc[self.failures["clip_id"] == str(clip_id), "reason"]
            why = f"its audio failed to decode ({failed.iloc[0]})" if len(failed) else "it is not in the corpus it was built from"
            raise FeatureCacheError(f"clip {clip_id!r} is not in the feature cache {self.directory}: {why}") from None

    def n_frames(self, clip_id: str) -> int:
        """Number of frames of ``clip_id``."""
        return self._row(clip_id)[1]

    def seconds(self, clip_id: str) -> float:
        """Duration of ``clip_id`` in seconds (frames / frames per second)."""
        return self.n_frames(clip_id) / self.config.frames_per_second

    def read(self, clip_id: str) -> np.ndarray:
        """All of a clip's features [shape=(n_frames, n_bins), dtype=float16] (a memmap slice)."""
        offset, n = self._row(clip_id)
        return self.data[offset:offset + n]

    def read_crop(self, clip_id: str, start: int, length: int) -> np.ndarray:
        """Frames ``start`` to ``start + length`` of a clip [shape=(length, n_bins), dtype=float16].

        Zero-padded at the end where the clip is shorter. ``start`` must be inside the clip.
        """
        offset, n = self._row(clip_id)
        if length < 1:
            raise ParameterError(f"length must be >= 1 frame, got {length}")
        if not 0 <= start < n:
            raise ParameterError(f"start must be in [0, {n}) for clip {clip_id!r} of {n} frames, got {start}")
        stop = min(start + length, n)
        if stop - start == length:
            return np.array(self.data[offset + start:offset + stop])
        out = np.zeros((length, self.config.n_bins), dtype=np.float16)
        out[:stop - start] = self.data[offset + start:offset + stop]
        return out

    def uncovered(self, clip_ids: Sequence[str], sources: Sequence[str]) -> list[int]:
        """Positions of the clips this cache has no answer for: new, changed, or failed unexpectedly."""
        known = dict(zip(self.index["clip_id"], self.index["source"]))
        settled = self.failures[~self.failures["reason"].str.startswith(f"{UNEXPECTED}:")]
        known.update(zip(settled["clip_id"], settled["source"]))
        return [i for i, (c, s) in enumerate(zip(clip_ids, sources)) if known.get(c) != s]


def _open_complete(directory: Path) -> FeatureCache | None:
    if not (directory / COMPLETE).is_file():
        return None
    try:
        return FeatureCache.open(directory)
    except (FeatureCacheError, ParameterError, OSError, ValueError, KeyError) as exc:
        log.warning("%s: the existing cache cannot be read (%s); rebuilding it", directory, exc)
        return None


def build_cache(corpus: Corpus, config: FeatureConfig, *, cache_root: Path | None = None,
                workers: int | None = None, progress: bool = True) -> FeatureCache:
    """Compute and cache the features of every clip of ``corpus``; idempotent and resumable.

    A finished cache that covers every clip with unchanged audio is returned at once. A
    missing or stale one is built with ``workers`` processes (default: `default_workers`).
    Clips are processed in shards, each written to ``parts/`` as soon as it is done, so a
    killed build resumes where it stopped (an update of a finished cache recomputes only new
    or changed clips). The parts are then gathered into ``data.npy`` and ``index.parquet``
    (temporary names moved into place) and the ``complete`` stamp is written last. Files
    that cannot be decoded are listed with their reason in ``failures.csv``; one bad file
    never stops the batch.
    """
    if workers is not None and workers < 1:
        raise ParameterError(f"workers must be >= 1, got {workers}")
    where = "cache_root" if cache_root is not None else f"the feature cache root in the data root (${DATA_ENV})"
    directory = check_folder_path(cache_dir(corpus, config, cache_root), where)
    paths = corpus.audio_paths
    sources = [source_signature(c, r, p) for c, r, p in zip(corpus.clip_ids, corpus.rel_paths, paths)]
    parts = directory / PARTS
    existing = _open_complete(directory)
    if existing is not None:
        stale = existing.uncovered(corpus.clip_ids, sources)
        if not stale:
            log.info("reusing feature cache %s (%d clips, %d failures)", directory, len(existing),
                     len(existing.failures))
            return existing
        log.info("%s: %d of %d clips are new or changed; updating the cache", directory, len(stale), len(corpus))
        _seed_parts(existing, parts)
        (directory / COMPLETE).unlink()
    elif (corpus.root / "features" / config.key() / COMPLETE).is_file():
        log.info("%s: a cache of an older version of this code lives in %s; it is not used (caches now live "
                 "in the data root) and can be deleted", corpus.root, corpus.root / "features")
    parts.mkdir(parents=True, exist_ok=True)
    # A killed build leaves temps of data.npy (the size of the whole cache) or of a part, or
    # the parts of a finished build that it was deleting.
    remove_stale_temps(directory)
    remove_stale_temps(parts)
    _remove_discarded(directory.parent)
    # config.json is written once, when the build completes: on ext4, renaming a file onto an
    # existing one waits for its data to be written back (30 ms at the end of a 300-clip build).
    (directory / CONFIG).unlink(missing_ok=True)

    done = _scan_parts(parts)
    todo = [i for i, s in enumerate(sources) if s not in done]
    if len(todo) < len(corpus):
        log.info("%s: resuming, %d of %d clips already done", directory, len(corpus) - len(todo), len(corpus))
    unexpected = _run([(paths[i], sources[i]) for i in todo], parts, config, workers, progress)
    return _consolidate(directory, corpus, config, sources, unexpected)


def _process_shard(task: tuple[list[tuple[Path, str]], Path, FeatureConfig]) -> list[tuple[str, str]]:
    """Decode a shard of clips and write its part; returns ``(source, reason)`` of unexpected errors."""
    items, parts, config = task
    arrays: list[np.ndarray] = []
    sources: list[str] = []
    failures: dict[str, str] = {}
    unexpected: list[tuple[str, str]] = []
    for path, source in items:
        try:
            arrays.append(cache_features(load_audio(path, config.sample_rate), config))
            sources.append(source)
        except AudioFileError as exc:
            failures[source] = exc.reason
        except Exception as exc:  # one bad file never stops a batch; not written as a part, so retried later
            log.warning("%s: unexpected %s while computing features: %s", path, type(exc).__name__, exc)
            unexpected.append((source, f"{UNEXPECTED}: {type(exc).__name__}: {exc}"))
    name = hashlib.sha1("".join(s for _, s in items).encode()).hexdigest()[:16]
    _write_part(parts, name, arrays, sources, failures)
    return unexpected


def _write_part(parts: Path, name: str, arrays: list[np.ndarray], sources: list[str],
                failures: dict[str, str]) -> None:
    """A part: ``<name>.npy`` (its clips' frames, stacked), then ``<name>.json`` listing them.

    The JSON is written last: a part without one is unfinished and ignored. (Plain .npy, not
    .npz: zip's CRC over every byte cost 10% of the decoding time.)
    """
    if arrays:
        _write_npy(parts / f"{name}.npy", arrays, (sum(len(a) for a in arrays), arrays[0].shape[1]))
    write_json(parts / f"{name}.json", {"sources": sources, "n_frames": [len(a) for a in arrays],
                                        "failures": failures})


def _read_parts(parts: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every finished part: (its .npy, its listing)."""
    found = []
    for listing in sorted(parts.glob("*.json")):
        if not listing.name.startswith("."):  # ".<name>.<random>.tmp.json": being written
            found.append((listing.with_suffix(".npy"), read_json(listing)))
    return found


def _scan_parts(parts: Path) -> set[str]:
    """Sources of every clip a part already settles (features or a decode failure)."""
    done: set[str] = set()
    for _, listing in _read_parts(parts):
        done.update(listing["sources"])
        done.update(listing["failures"])
    return done


def _worker_init(parent: int) -> None:
    # Only the parent handles Ctrl-C: it cancels what is queued, and the workers finish the
    # shard in hand (a part is written whole or not at all) instead of printing tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


def default_workers() -> int:
    """One worker per CPU core this process may use (its affinity, e.g. under taskset or a cgroup)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _run(items: list[tuple[Path, str]], parts: Path, config: FeatureConfig, workers: int | None,
         progress: bool) -> dict[str, str]:
    """Process clips in shards, in parallel; returns ``{source: reason}`` of unexpected errors."""
    from tqdm.auto import tqdm

    if not items:
        return {}
    workers = min(workers or default_workers(), len(items))
    # Shards: few enough files (creating, renaming and deleting one costs milliseconds on
    # some disks), at least four a worker, and as many for each worker, of equal size, so
    # that no worker is left with one shard more than the other at the end (300 clips in
    # shards of 32 gave one worker 160 clips and the other 140). Shards shrinking towards the
    # end of the build measured the same (300 clips, 16 shuffled rounds).
    n_shards = workers * max(4, -(-len(items) // (workers * SHARD_CLIPS)))
    size = max(1, -(-len(items) // n_shards))
    tasks = [(items[i:i + size], parts, config) for i in range(0, len(items), size)]
    bar = tqdm(total=len(items), desc="features", unit="clip", disable=not progress, dynamic_ncols=True)
    unexpected: dict[str, str] = {}
    try:
        if workers == 1:
            for task in tasks:
                unexpected.update(_process_shard(task))
                bar.update(len(task[0]))
            return unexpected
        # The parent fills the per-config caches (the mel filterbank, the log-mel table) before
        # workers are forked.
        cache_features(np.zeros(config.n_fft, dtype=np.float32), config)
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(),
                                       initializer=_worker_init, initargs=(os.getpid(),))
        try:
            for task, errors in zip(tasks, executor.map(_process_shard, tasks)):
                unexpected.update(errors)
                bar.update(len(task[0]))
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown()
        return unexpected
    finally:
        bar.close()


def _seed_parts(cache: FeatureCache, parts: Path, shard: int = 256) -> None:
    """Turn a finished cache back into parts, so an update recomputes only what changed."""
    parts.mkdir(parents=True, exist_ok=True)
    index = cache.index
    for start in range(0, len(index), shard):
        rows = index.iloc[start:start + shard]
        arrays = [np.asarray(cache.read(c)) for c in rows["clip_id"]]
        _write_part(parts, f"seed-{start:08d}", arrays, rows["source"].tolist(), {})
    settled = cache.failures[~cache.failures["reason"].str.startswith(f"{UNEXPECTED}:")]
    _write_part(parts, "seed-failures", [], [], dict(zip(settled["source"], settled["reason"])))


def _consolidate(directory: Path, corpus: Corpus, config: FeatureConfig, sources: list[str],
                 unexpected: dict[str, str]) -> FeatureCache:
    """Gather the parts into data.npy + index.parquet + failures.csv, then stamp the cache."""
    parts = directory / PARTS
    where: dict[str, tuple[Path, int, int]] = {}  # source -> (part's .npy, first row there, frames)
    reasons: dict[str, str] = {}
    for frames, listing in _read_parts(parts):
        start = 0
        for source, n in zip(listing["sources"], listing["n_frames"]):
            where[source] = (frames, start, int(n))
            start += int(n)
        reasons.update(listing["failures"])
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    offset = 0
    for clip_id, rel_path, source in zip(corpus.clip_ids, corpus.rel_paths, sources):
        if source in where:
            n = where[source][2]
            rows.append({"clip_id": clip_id, "path": rel_path, "offset": offset, "n_frames": n, "source": source})
            offset += n
        else:
            reason = reasons.get(source) or unexpected.get(source) or f"{UNEXPECTED}: not processed"
            failed.append({"clip_id": clip_id, "path": rel_path, "reason": reason, "source": source})
    index = pd.DataFrame(rows, columns=["clip_id", "path", "offset", "n_frames", "source"])
    index = index.astype({"clip_id": str, "path": str, "offset": np.int64, "n_frames": np.int64, "source": str})
    failures = pd.DataFrame(failed, columns=["clip_id", "path", "reason", "source"])

    _gather_npy(directory / DATA, [where[row["source"]] for row in rows], (offset, config.n_bins))
    write_parquet(directory / INDEX, index)
    write_csv(directory / FAILURES, failures)
    # The parts go as soon as data.npy holds their frames, before config.json is written: on
    # ext4, renaming onto an existing file starts writing back the disk's dirty data, after
    # which deleting the parts waits for their writes (0.4 s for 300 clips here). A build
    # killed in between starts afresh.
    _discard(parts)
    write_json(directory / CONFIG, _meta(corpus, config, status="complete", n_clips=len(index),
                                         n_failures=len(failures), total_frames=offset))
    write_text(directory / COMPLETE, _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds") + "\n")
    if len(failures):
        kinds = failures["reason"].str.split(":").str[0].value_counts()
        log.warning("%d of %d clips could not be used (%s); see %s", len(failures), len(corpus),
                    ", ".join(f"{k}: {v}" for k, v in kinds.items()), directory / FAILURES)
    # What was just written, without reading it back (the parquet and CSV readers cost 20-30 ms
    # of the build's serial end); data.npy is mapped on first use.
    return FeatureCache(directory, config, index, failures, corpus_name=corpus.name)


def _write_npy(path: Path, chunks: Iterable[np.ndarray], shape: tuple[int, int]) -> None:
    """Write float16 ``chunks`` stacked along axis 0 as one .npy of ``shape``, atomically, streaming.

    Plain writes rather than a memory map: no page faults on a fresh mapping, one copy a byte.
    """
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False, "shape": shape}
    rows = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for chunk in chunks:
            assert chunk.dtype == np.float16 and chunk.shape[1:] == shape[1:]
            fh.write(np.ascontiguousarray(chunk).data)
            rows += chunk.shape[0]
        assert rows == shape[0], f"wrote {rows} rows of {shape[0]}"


_discards = itertools.count()


def _discard(folder: Path) -> None:
    """Delete ``folder`` off the build's critical path: moved aside at once, removed by a thread.

    Deleting a build's part files frees their disk blocks one by one (0.1 s for 300 clips
    here), the largest share of the serial end of a parallel build; the finished cache does
    not need them. The folder is renamed to ``<DISCARD_PREFIX><cache key>-<pid>-<n>`` beside
    the corpus's caches and deleted by a thread that is not a daemon, so the process waits
    for it before exiting; one killed meanwhile leaves the folder to the next build
    (`_remove_discarded`).
    """
    trash = folder.parent.parent / f"{DISCARD_PREFIX}{folder.parent.name}-{os.getpid()}-{next(_discards)}"
    try:
        folder.rename(trash)
    except OSError:  # gone already, or not movable: delete it here
        shutil.rmtree(folder, ignore_errors=True)
        return
    thread = threading.Thread(target=shutil.rmtree, args=(trash,), kwargs={"ignore_errors": True},
                              name=f"discard {trash.name}")
    thread.start()
    _discarding.append(thread)


_discarding: list[threading.Thread] = []


def wait_for_discards(timeout: float | None = None) -> None:
    """Wait until the part files of finished builds (`_discard`) are deleted (benchmarks, tests)."""
    while _discarding:
        _discarding.pop().join(timeout)


def _remove_discarded(corpus_caches: Path) -> None:
    """Delete the folders `_discard` left behind in ``corpus_caches`` when its process was killed."""
    for trash in corpus_caches.glob(f"{DISCARD_PREFIX}*"):
        pid = trash.name.rsplit("-", 2)[-2] if trash.name.count("-") >= 2 else ""
        if not (pid.isdigit() and (int(pid) == os.getpid() or pid_alive(int(pid)))):
            shutil.rmtree(trash, ignore_errors=True)


def _gather_npy(path: Path, pieces: Sequence[tuple[Path, int, int]], shape: tuple[int, int]) -> None:
    """Write ``data.npy`` from row ranges of the parts' .npy files: ``(part, first row, rows)`` in order.

    Consecutive ranges of one part (a shard is a run of consecutive clips) are merged, then
    each is copied file to file by the kernel (``os.copy_file_range``), without mapping or
    reading the frames into this process: the gathering is the one serial step of a
    parallel build. Where the kernel cannot, the bytes go through a buffer instead.
    """
    row_bytes = shape[1] * np.dtype(np.float16).itemsize
    runs: list[list[Any]] = []  # [part, first row, rows]
    for part, start, n in pieces:
        if runs and runs[-1][0] == part and runs[-1][1] + runs[-1][2] == start:
            runs[-1][2] += n
        else:
            runs.append([part, start, n])
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False, "shape": shape}
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        out.flush()
        data_start = out.tell()
        part_data_starts: dict[Path, int] = {}
        for part, start, n in runs:
            with open(part, "rb") as src:
                if part not in part_data_starts:
                    part_data_starts[part] = _npy_data_start(src, part, shape[1])
                _copy_range(src, out, part_data_starts[part] + start * row_bytes, n * row_bytes)
        written = out.seek(0, os.SEEK_END) - data_start
        assert written == shape[0] * row_bytes, f"wrote {written} bytes of {shape[0] * row_bytes}"


def _npy_data_start(fh: Any, path: Path, n_bins: int) -> int:
    """Where a part's float16 frames start in its .npy file (checking its header)."""
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    version = np.lib.format.read_magic(fh)
    if version not in read_header:
        raise FeatureCacheError(f"{path}: .npy format version {version}, expected 1.0 or 2.0; delete the parts folder "
                                "to rebuild")
    shape, fortran_order, dtype = read_header[version](fh)
    if dtype != np.float16 or fortran_order or len(shape) != 2 or shape[1] != n_bins:
        raise FeatureCacheError(f"{path}: a part of shape {shape} {dtype}, expected (n, {n_bins}) float16; "
                                "delete the parts folder to rebuild")
    return fh.tell()


def _copy_range(src: Any, out: Any, offset: int, count: int) -> None:
    """Append ``count`` bytes of ``src`` from ``offset`` to ``out`` (both open binary files)."""
    copy = getattr(os, "copy_file_range", None)
    while count > 0 and copy is not None:
        try:
            done = copy(src.fileno(), out.fileno(), count, offset)
        except OSError:  # e.g. EXDEV or ENOSYS: not between these files here
            break
        if done == 0:
            raise FeatureCacheError(f"{src.name}: ends {count} bytes short of the frames its index lists")
        offset, count = offset + done, count - done
        out.seek(0, os.SEEK_END)  # copy_file_range moved the descriptor's offset, not the file object's
    src.seek(offset)
    while count > 0:
        chunk = src.read(min(count, 1 << 22))
        if not chunk:
            raise FeatureCacheError(f"{src.name}: ends {count} bytes short of the frames its index lists")
        out.write(chunk)
        count -= len(chunk)


def _meta(corpus: Corpus, config: FeatureConfig, **extra: Any) -> dict[str, Any]:
    return {"cache_version": CACHE_VERSION, "key": config.key(), "features": config.to_dict(),
            "corpus": {"name": corpus.name, "root": str(corpus.root), "source": corpus.source},
            "files": {"data": DATA, "index": INDEX, "failures": FAILURES}, **extra}
