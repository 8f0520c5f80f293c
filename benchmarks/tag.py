"""``python -m benchmarks tag [--run RUN_DIR]``: how fast ``python -m pipeline tag`` tags a 30 s clip.

Without ``--run`` the tagger is the converted published MTT musicnn (`pipeline.pretrained`).
Measured, side by side in one run:

- the whole process ``python -m pipeline tag FILE --run RUN_DIR`` (interpreter start, imports,
  model load, decode, features, inference, printing), wall time of a subprocess, median of
  ``--repeat`` runs after one warm-up run (so the file and the libraries sit in the page cache);
- the same process with ``--torch`` (the checkpoint through torch instead of the ONNX model);
- the same process with ``--taggram OUT.csv`` (the taggram as well);
- ``python -c pass``: the interpreter's own start, the floor of any whole-process figure;
- in this process, after the tagger is loaded: decode, features, clip probabilities and the
  taggram of the clip, through ONNX Runtime and through torch (median of ``--repeat``);
- with ``--original-python PY --musicnn DIR`` (a throwaway environment with TensorFlow and the
  unpacked musicnn 0.1.0 wheel, docs/pretrained.md): the original ``musicnn.tagger.top_tags``
  on the same clip, as a whole process;
- the peak resident memory of each whole process (the child's ``ru_maxrss``);
- ``--folder-clips N``: ``python -m pipeline tag FOLDER`` on N copies of the clip re-encoded as
  30 s mp3s in two real formats (44.1 kHz stereo at 128 kbit/s, and MagnaTagATune's 16 kHz mono
  at 32 kbit/s), as clips per second of the whole process.
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
    p.add_argument("--run", type=Path, default=None, metavar="RUN_DIR",
                   help="a run directory whose score stage is complete (default: the converted mtt_musicnn)")
    p.add_argument("--original-python", type=Path, default=None, metavar="PY",
                   help="a Python with TensorFlow + tf_keras + librosa, to time the original musicnn as well")
    p.add_argument("--musicnn", type=Path, default=None, metavar="DIR",
                   help="the unpacked musicnn 0.1.0 wheel (for --original-python)")
    p.add_argument("--folder-clips", type=int, default=8, metavar="N",
                   help="30 s clips per format for the folder throughput (default 8; 0 skips it)")
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


# Runs a command and prints its peak resident memory (KiB): getrusage(RUSAGE_CHILDREN) of a
# process whose only child is the command, so each measurement has its own maximum.
_PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def time_process(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[list[float], list[float], float]:
    """Wall times, CPU times (user + system, all threads) of ``repeat`` runs of ``argv``, and its peak memory in GB.

    One untimed warm-up run goes first. CPU time is the steadier figure on a shared machine:
    other processes stretch the wall time, not the work done.
    """
    peak = 0.0

    def once() -> tuple[float, float]:
        nonlocal peak
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", _PEAK, *argv], cwd=REPO, env=env, capture_output=True,
                                text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr[-2000:]}")
        peak = max(peak, int(result.stderr.strip().splitlines()[-1]) / 2**20)
        return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    once()
    runs = [once() for _ in range(repeat)]
    return [w for w, _ in runs], [c for _, c in runs], peak


def folder_of_clips(out: Path, source: Path, n: int, sample_rate: int, channels: int, bitrate: int) -> Path:
    """``n`` 30 s mp3s made from ``source`` (looped to 30 s) at ``sample_rate`` / ``channels`` / ``bitrate``."""
    import lameenc
    import numpy as np

    from pipeline.features.audio import load_audio

    y = load_audio(source, sample_rate=sample_rate)
    y = np.resize(y, 30 * sample_rate)
    pcm = (np.clip(y, -1, 1) * 32767).astype("<i2")
    if channels == 2:  # a slightly different right channel, so that the mix-down is real work
        pcm = np.stack([pcm, np.roll(pcm, 7)], axis=1).reshape(-1)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        encoder = lameenc.Encoder()
        encoder.set_bit_rate(bitrate)
        encoder.set_in_sample_rate(sample_rate)
        encoder.set_channels(channels)
        encoder.set_quality(2)
        (out / f"clip{i:02d}.mp3").write_bytes(bytes(encoder.encode(pcm.tobytes()) + encoder.flush()))
    return out


_ORIGINAL = ("import sys; sys.path.insert(0, sys.argv[2]); from musicnn.tagger import top_tags; "
             "print(top_tags(sys.argv[1], model='MTT_musicnn', topN=5, print_tags=False))")


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
        from pipeline.pretrained.build import ensure_model
        from pipeline.run.rundir import RunDir

        run_dir = args.run or ensure_model("mtt_musicnn")
        run = RunDir(run_dir)
        manifest = run.manifest()
        seconds = len(load_audio(path)) / FeatureConfig.sample_rate
        print(f"run: {run_dir} (model {manifest.get('model', {}).get('name')}, {len(manifest.get('tags', []))} tags)")
        print(f"file: {path} ({seconds:.1f} s)")
        print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}; "
              f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')}; median of {args.repeat} runs\n")

        tag = [sys.executable, "-m", "pipeline", "tag", str(path), "--run", str(run_dir), "--top", "5"]
        print(f"whole process{'':<31} wall time (median, min, max)             CPU time (median)  peak memory")
        rows = {
            "python -c pass (interpreter start)": [sys.executable, "-c", "pass"],
            "python -m pipeline tag (ONNX)": tag,
            "python -m pipeline tag --taggram OUT.csv": tag + ["--taggram", str(Path(tmp) / "taggram.csv")],
            "python -m pipeline tag --torch": tag + ["--torch"],
        }
        if args.original_python is not None:
            if args.musicnn is None:
                raise ParameterError("--original-python needs --musicnn DIR (the unpacked musicnn 0.1.0 wheel)")
            env["TF_USE_LEGACY_KERAS"], env["TF_CPP_MIN_LOG_LEVEL"] = "1", "3"
            rows["original musicnn (TensorFlow) top_tags"] = [str(args.original_python), "-c", _ORIGINAL, str(path),
                                                              str(args.musicnn)]
        results = {}
        for name, command in rows.items():
            results[name], cpu, peak = time_process(command, args.repeat, env)
            print(f"  {name:<42} {_fmt(results[name])}   {statistics.median(cpu):6.3f} s   {peak:6.3f} GB",
                  flush=True)
        if args.folder_clips > 0:
            print(f"\nfolder of {args.folder_clips} x 30 s mp3s, 'python -m pipeline tag FOLDER' (whole process)")
            for label, sr, channels, bitrate in (("44.1 kHz stereo, 128 kbit/s", 44100, 2, 128),
                                                 ("16 kHz mono, 32 kbit/s (MagnaTagATune)", 16000, 1, 32)):
                folder = folder_of_clips(Path(tmp) / f"{sr}-{channels}", path, args.folder_clips, sr, channels,
                                         bitrate)
                walls, cpu, peak = time_process([sys.executable, "-m", "pipeline", "tag", str(folder), "--run",
                                                 str(run_dir), "--csv", str(Path(tmp) / "out.csv")],
                                                max(1, args.repeat // 3), env)
                wall = statistics.median(walls)
                print(f"  {label:<42} {args.folder_clips / wall:6.2f} clips/s  ({wall:.2f} s wall, "
                      f"{statistics.median(cpu):.2f} s CPU, peak {peak:.3f} GB)", flush=True)

        from pipeline.scoring.tagger import OnnxTagger

        print("\nin process, after load")
        start = time.perf_counter()
        tagger = OnnxTagger(run_dir)
        print(f"  ONNX tagger load (session, config)          {time.perf_counter() - start:7.3f} s")
        for name, times in in_process(tagger, path, args.repeat).items():
            print(f"  ONNX  {name:<36} {_fmt(times)}")
        start = time.perf_counter()
        from pipeline.scoring.inference import TorchTagger

        torch_tagger = TorchTagger(run_dir)
        print(f"  torch import + checkpoint load             {time.perf_counter() - start:7.3f} s")
        for name, times in in_process(torch_tagger, path, args.repeat).items():
            print(f"  torch {name:<36} {_fmt(times)}")

        fast = statistics.median(results["python -m pipeline tag (ONNX)"])
        original = results.get("original musicnn (TensorFlow) top_tags")
        if original:
            print(f"\n'python -m pipeline tag' on a {seconds:.1f} s clip: {fast:.2f} s as a whole process, "
                  f"{statistics.median(original) / fast:.1f}x faster than the original musicnn's "
                  f"{statistics.median(original):.2f} s")
    return 0
