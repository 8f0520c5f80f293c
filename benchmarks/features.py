"""``python -m benchmarks features [CORPUS_DIR]``: how fast audio becomes cached features.

Prints clips per second, side by side in one run, for

(a) decoding alone (`pipeline.features.audio.load_audio`, in the same worker processes as (b));
(b) this pipeline: `pipeline.features.cache.build_cache`, i.e. decode + log-mel + writing the cache,
    into a fresh temporary directory (wall time until the cache is ready; CPU time also counts
    the thread that deletes its part files afterwards);
(c) the plain per-file loop most projects start with: ``librosa.load(path, sr=16000)`` then
    ``librosa.feature.melspectrogram``, one file after another.

Targets (issue "Audio and features"): (b) costs at most 1.5x (a), and runs at least 2x faster
than (c). Every variant reads the same files, already in the page cache; librosa's one-off
first-call cost (several seconds of JIT compilation) is paid before timing, in its favour.
Each variant runs ``--repeats`` times, in rounds of one run each (in a new order every round),
and the fastest run counts; the median over rounds of (b) / (a) within a round is printed too.
Besides wall time it reports CPU time (this process plus its joined workers), which a busy
shared machine disturbs less, and (a) and (b) once more in a single process, (a1) and (b1):
the cleanest measure of the work feature extraction adds to decoding.
Without CORPUS_DIR, a demo-like corpus of synthetic 16 kHz mp3s is written to a temporary
folder first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.features.audio import load_audio, save_mp3
from pipeline.features.extract import FeatureConfig
from pipeline.sources.corpus import Corpus


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks features",
                                description=(__doc__ or "").split("\n", 1)[-1].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus_dir", type=Path, nargs="?", default=None, metavar="CORPUS_DIR",
                   help="corpus to read (default: write a synthetic demo-like corpus to a temporary folder)")
    p.add_argument("--clips", type=int, default=200, metavar="N", help="clips to time (default 200)")
    p.add_argument("--seconds", type=float, default=10.0, metavar="S",
                   help="clip length of the synthetic corpus (default 10, like the demo)")
    p.add_argument("--synthetic-rate", type=int, default=FeatureConfig.sample_rate, metavar="HZ",
                   help="sample rate of the synthetic mp3s (default 16000, like MagnaTagATune; 44100 shows "
                        "typical music files, which are also resampled)")
    p.add_argument("--synthetic-kbps", type=int, default=32, metavar="K",
                   help="bit rate of the synthetic mp3s (default 32, like MagnaTagATune)")
    p.add_argument("--workers", type=int, default=None, metavar="W",
                   help="worker processes of (a) and (b) (default: one per CPU core)")
    p.add_argument("--repeats", type=int, default=3, metavar="R", help="runs of each variant; the fastest counts")
    return p


def make_synthetic_corpus(root: Path, n_clips: int = 200, seconds: float = 10.0, *, sample_rate: int = FeatureConfig.sample_rate,
                          bitrate: int = 32, seed: int = 0) -> Path:
    """Write a small MTT-format corpus of synthetic music-like mp3s (tones, chords, noise hits).

    Used to measure decoding speed where no real corpus is at hand; the audio is not meant to
    carry tags. Returns ``root``.
    """
    from pipeline.sources.mtt_format import ANNOTATIONS_FILE, write_annotations

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    clip_ids, rel_paths, labels = [], [], []
    for i in range(n_clips):
        bpm = rng.uniform(60, 180)
        beat = (t * bpm / 60) % 1.0  # position inside the beat
        y = np.zeros_like(t)
        for _ in range(3):  # a chord of decaying harmonic tones
            f0 = 110 * 2 ** rng.uniform(0, 3)
            for h in range(1, 5):
                y += np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h
        y *= 0.1 * np.exp(-3 * beat)
        has_hits = rng.random() < 0.5
        if has_hits:  # noise bursts on the beat, like a hi-hat
            y += 0.2 * rng.standard_normal(t.size) * np.exp(-30 * beat)
        y /= max(1e-9, np.abs(y).max()) / 0.8
        rel = f"{i % 16:x}/synthetic-{i:05d}.mp3"
        save_mp3(root / rel, y, sample_rate, bitrate=bitrate)
        clip_ids.append(str(i))
        rel_paths.append(rel)
        labels.append([1, int(has_hits)])
    write_annotations(root / ANNOTATIONS_FILE, clip_ids, ["tones", "noise hits"], np.array(labels, dtype=np.uint8),
                      rel_paths)
    return root


def _subset(corpus: Corpus, n: int) -> Corpus:
    rows = np.arange(min(n, len(corpus)))
    return Corpus(name=corpus.name, root=corpus.root, source=corpus.source,
                  clip_ids=[corpus.clip_ids[i] for i in rows], rel_paths=[corpus.rel_paths[i] for i in rows],
                  tags=list(corpus.tags), labels=corpus.labels[rows], split=corpus.split[rows])


def _decode_size(path: Path) -> int:
    return int(load_audio(path, FeatureConfig.sample_rate).size)


class _Clock:
    """Wall time, and CPU time of this process plus its finished children (the workers)."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu_seconds() - self.cpu


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _time_decode(paths: list[Path], workers: int) -> _Clock:
    if workers == 1:  # in this process, like build_cache with one worker
        with _Clock() as clock:
            sum(map(_decode_size, paths))
        return clock
    chunksize = max(1, min(16, len(paths) // (workers * 8)))
    with _Clock() as clock, ProcessPoolExecutor(max_workers=workers) as ex:  # workers joined: CPU counted
        sum(ex.map(_decode_size, paths, chunksize=chunksize))
    return clock


def _time_pipeline(corpus: Corpus, workers: int) -> _Clock:
    from pipeline.features.cache import build_cache, wait_for_discards
    from pipeline.features.extract import FeatureConfig

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        with _Clock() as clock:
            build_cache(corpus, FeatureConfig(), cache_root=Path(tmp), workers=workers, progress=False)
            ready = time.perf_counter()  # the cache is ready here; its parts are still being deleted
            wait_for_discards()  # ... by a thread, whose CPU time is part of the build's
        clock.wall -= time.perf_counter() - ready
    return clock


def _librosa_clip(path: Path) -> np.ndarray:
    import librosa

    d = FeatureConfig()
    y, sr = librosa.load(path, sr=d.sample_rate)
    return librosa.feature.melspectrogram(y=y, sr=sr, n_fft=d.n_fft, hop_length=d.hop_length, n_mels=d.n_mels)


def _time_librosa(paths: list[Path]) -> _Clock:
    with _Clock() as clock:
        for path in paths:
            _librosa_clip(path)
    return clock


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.features.cache import default_workers
    from pipeline.sources.loader import load_corpus

    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        if args.corpus_dir is None:
            print(f"writing {args.clips} synthetic {args.seconds:g} s mp3s ({args.synthetic_rate} Hz mono, "
                  f"{args.synthetic_kbps} kbit/s) to {tmp} ...")
            make_synthetic_corpus(Path(tmp), args.clips, args.seconds, sample_rate=args.synthetic_rate,
                                  bitrate=args.synthetic_kbps)
            corpus_dir = Path(tmp)
        else:
            corpus_dir = args.corpus_dir
        corpus = _subset(load_corpus(corpus_dir), args.clips)
        paths = corpus.audio_paths
        for path in paths:  # page cache: every variant reads from memory
            path.read_bytes()
        durations = [load_audio(p).size / FeatureConfig.sample_rate for p in paths[:20]]
        print(f"{len(paths)} clips from {corpus_dir} (about {np.mean(durations):.1f} s each); "
              f"{workers} worker(s) for (a) and (b); {os.cpu_count()} CPU core(s)")
        _librosa_clip(paths[0])  # librosa's first call compiles (numba) for seconds: not timed
        timers = {"a": lambda: _time_decode(paths, workers), "b": lambda: _time_pipeline(corpus, workers),
                  "c": lambda: _time_librosa(paths)}
        if workers > 1:  # the same work in one process: the cleanest cost ratio on a shared machine
            timers.update({"a1": lambda: _time_decode(paths, 1), "b1": lambda: _time_pipeline(corpus, 1)})
        rounds: list[dict[str, _Clock]] = []
        rng = np.random.default_rng(0)
        for _ in range(args.repeats):  # each round in a new order: a machine's slow spell hits no variant alone
            order = list(timers)
            rng.shuffle(order)
            rounds.append({key: timers[key]() for key in order})
    wall = {key: min(r[key].wall for r in rounds) for key in timers}
    cpu = {key: min(r[key].cpu for r in rounds) for key in timers}
    paired = np.array([r["b"].wall / r["a"].wall for r in rounds])
    n = len(paths)
    labels = {"a": f"decode only ({workers} workers)",
              "b": f"decode + log-mel + cache: build_cache ({workers} workers)",
              "c": "librosa.load + melspectrogram, plain loop (1 process)",
              "a1": "decode only (1 process)",
              "b1": "decode + log-mel + cache: build_cache (1 process)"}
    print(f"\n{'':5}{'variant':<56}{'clips/s':>9}{'wall ms/clip':>14}{'CPU ms/clip':>13}")
    for key in timers:
        print(f"{f'({key})':<5}{labels[key]:<56}{n / wall[key]:>9.1f}{1000 * wall[key] / n:>14.2f}"
              f"{1000 * cpu[key] / n:>13.2f}")
    cost, speedup = wall["b"] / wall["a"], wall["c"] / wall["b"]
    print(f"\n(b) costs {cost:.2f}x (a) in wall time, {cpu['b'] / cpu['a']:.2f}x in CPU time"
          + (f" (1 process: {cpu['b1'] / cpu['a1']:.2f}x)" if "a1" in cpu else "")
          + f"  [target <= 1.5]: {'met' if cost <= 1.5 else 'NOT met'}")
    print(f"    (b) / (a) wall time within each round: median {np.median(paired):.2f}x, "
          f"{paired.min():.2f}-{paired.max():.2f}x over {len(paired)} rounds")
    print(f"(b) runs {speedup:.2f}x faster than (c) in wall time, uses {cpu['c'] / cpu['b']:.2f}x less CPU  "
          f"[target >= 2]: {'met' if speedup >= 2 else 'NOT met'}")
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average during the run (1, 5, 15 min): {load} on {os.cpu_count()} core(s)")
    except OSError:
        pass
    return 0
