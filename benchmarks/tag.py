"""``python -m benchmarks tag --run RUN_DIR``: how fast ``python -m pipeline tag`` tags a 30 s clip.

Measured, side by side in one run:

- the whole process ``python -m pipeline tag FILE --run RUN_DIR`` (interpreter start, imports,
  model load, decode, features, inference, printing), wall time of a subprocess, median of
  ``--repeat`` runs after one warm-up run (so the file and the libraries sit in the page cache);
- the same process with ``--torch`` (the checkpoint through torch instead of the ONNX model);
- the same process with ``--taggram OUT.csv`` (the taggram as well);
- ``python -c pass``: the interpreter's own start, the floor of any whole-process figure;
- in this process, after the tagger is loaded: decode, features, clip probabilities and the
  taggram of the clip, through ONNX Runtime and through torch (median of ``--repeat``).

The published musicnn tagger (``pip install musicnn``, TensorFlow) takes about 5-6 s per clip
on the reference machine, most of it start-up; it is not installed here, so it is not timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.features.extract import FeatureConfig
from pipeline.paths import REPO

MTT_CLIP = REPO.parent / "shared" / "fixtures" / "real-audio" / "joram-moments_of_clarity-08-solipsism-59-88.mp3"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks tag",
        description="Time 'python -m pipeline tag' on a 30 s clip as a whole process (median wall time of "
                    "subprocesses), the same through the torch checkpoint, and the in-process time after load.")
    p.add_argument("--run", type=Path, required=True, metavar="RUN_DIR",
                   help="a run directory whose score stage is complete")
    p.add_argument("--file", type=Path, default=None, metavar="F",
                   help=f"audio file to tag (default: the 29.1 s MagnaTagATune clip {MTT_CLIP.name} when present, "
                        "else a generated 30 s mp3)")
    p.add_argument("--repeat", type=int, default=5, metavar="N", help="timed runs per measurement (default 5)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="sets OMP_NUM_THREADS for every measurement (default: unset, the libraries' choice)")
    return p


def generated_clip(out_dir: Path, seconds: float = 30.0, sample_rate: int = FeatureConfig.sample_rate) -> Path:
    """A 30 s mp3 of changing chords over a beat (deterministic), for machines without the MTT fixture."""
    import numpy as np

    from pipeline.features.audio import save_mp3

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    roots = 220.0 * 2 ** (np.array([0, 5, 7, 3]) / 12)
    root = roots[(t // 2).astype(int) % len(roots)]
    y = sum(np.sin(2 * np.pi * root * r * t) / (i + 1) for i, r in enumerate((1.0, 1.25, 1.5, 2.0)))
    beat = np.exp(-30 * (t % 0.5)) * np.random.default_rng(0).normal(0, 1, t.size)
    y = 0.25 * y / np.max(np.abs(y)) + 0.15 * beat
    path = out_dir / "generated-30s.mp3"
    save_mp3(path, y.astype(np.float32), sample_rate)
    return path


def time_process(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (user + system, all threads) of ``repeat`` runs of ``argv``.

    One untimed warm-up run goes first. CPU time is the steadier figure on a shared machine:
    other processes stretch the wall time, not the work done.
    """
    def once() -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr[-2000:]}")
        return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    once()
    runs = [once() for _ in range(repeat)]
    return [w for w, _ in runs], [c for _, c in runs]


def time_calls(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall times of ``repeat`` calls of ``fn`` (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _fmt(times: list[float]) -> str:
    return f"{statistics.median(times):7.3f} s   (min {min(times):.3f}, max {max(times):.3f})"


def in_process(tagger: Any, path: Path, repeat: int) -> dict[str, list[float]]:
    """Decode, features, probabilities and taggram of ``path`` through a loaded tagger."""
    from pipeline.features.audio import load_audio

    sr = tagger.features.sample_rate
    y = load_audio(path, sample_rate=sr)
    features = tagger.compute_features(y)
    return {
        "decode": time_calls(lambda: load_audio(path, sample_rate=sr), repeat),
        "features": time_calls(lambda: tagger.compute_features(y), repeat),
        "probabilities": time_calls(lambda: tagger.tag_features(features, taggram=False), repeat),
        "probabilities + taggram": time_calls(lambda: tagger.tag_features(features, taggram=True), repeat),
        "tag_file (all of the above)": time_calls(lambda: tagger.tag_file(path), repeat),
    }


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.errors import ParameterError

    if args.repeat < 1:
        raise ParameterError(f"--repeat must be >= 1, got {args.repeat}")
    env = dict(os.environ)
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or (MTT_CLIP if MTT_CLIP.is_file() else generated_clip(Path(tmp)))
        if not path.is_file():
            raise ParameterError(f"--file {path} does not exist")
        from pipeline.features.audio import load_audio
        from pipeline.run.rundir import RunDir

        run = RunDir(args.run)
        run.require("score")
        manifest = run.manifest()
        seconds = len(load_audio(path)) / FeatureConfig.sample_rate
        print(f"run: {args.run} (model {manifest.get('model', {}).get('name')}, {len(manifest.get('tags', []))} tags)")
        print(f"file: {path} ({seconds:.1f} s)")
        print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}; "
              f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')}; median of {args.repeat} runs\n")

        tag = [sys.executable, "-m", "pipeline", "tag", str(path), "--run", str(args.run), "--top", "5"]
        print(f"whole process{'':<31} wall time (median, min, max)             CPU time (median)")
        rows = {
            "python -c pass (interpreter start)": [sys.executable, "-c", "pass"],
            "python -m pipeline tag (ONNX)": tag,
            "python -m pipeline tag --taggram OUT.csv": tag + ["--taggram", str(Path(tmp) / "taggram.csv")],
            "python -m pipeline tag --torch": tag + ["--torch"],
        }
        results = {}
        for name, command in rows.items():
            results[name], cpu = time_process(command, args.repeat, env)
            print(f"  {name:<42} {_fmt(results[name])}   {statistics.median(cpu):6.3f} s", flush=True)

        from pipeline.scoring.tagger import OnnxTagger

        print("\nin process, after load")
        start = time.perf_counter()
        tagger = OnnxTagger(args.run)
        print(f"  ONNX tagger load (session, config)          {time.perf_counter() - start:7.3f} s")
        for name, times in in_process(tagger, path, args.repeat).items():
            print(f"  ONNX  {name:<36} {_fmt(times)}")
        start = time.perf_counter()
        from pipeline.scoring.inference import TorchTagger

        torch_tagger = TorchTagger(args.run)
        print(f"  torch import + checkpoint load             {time.perf_counter() - start:7.3f} s")
        for name, times in in_process(torch_tagger, path, args.repeat).items():
            print(f"  torch {name:<36} {_fmt(times)}")

        fast = statistics.median(results["python -m pipeline tag (ONNX)"])
        print(f"\n'python -m pipeline tag' on a {seconds:.1f} s clip: {fast:.2f} s as a whole process, "
              f"{5.5 / fast:.0f}x faster than the ~5.5 s of the published musicnn tagger (not timed here)")
    return 0
