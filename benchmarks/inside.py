"""``python -m benchmarks inside``: the cost of looking inside the model, on a real scored run (the demo's).

Two parts:

- **precompute**: what the score stage spent recording channel statistics in its pass and
  writing the inside-the-model files (from the stage's manifest entry), their sizes, and the
  pass's overhead measured afresh: ``--clips`` clips scored with and without the recorder;
- **interaction**: the "Inside the model" page driven by Streamlit's `AppTest` (as the server runs
  it, no browser): the first view of the page (ONNX Runtime session, the clip's maps), then
  another layer, another channel, another clip (decode + one ONNX pass), a clip seen before,
  the filters. Wall times of the script runs, medians; target (issue 11): under 300 ms after
  the first view.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.paths import REPO, data_root
from pipeline.run import files as rf
from pipeline.run.rundir import RunDir

APP = REPO / "dashboard" / "app.py"
PAGE = "views/inside_model.py"
TARGET_MS = 300.0


def precompute(run: RunDir, clips: int) -> None:
    """Print the recorded precompute cost and sizes, and the pass overhead on ``clips`` clips."""
    import numpy as np
    import torch

    from pipeline.inspect.precompute import ChannelRecorder
    from pipeline.scoring.inference import feature_cache, load_run
    from pipeline.sources.loader import corpus_from_record

    entry = run.manifest()["stages"]["score"]
    inside = entry.get("inside") or {}
    print(f"score stage of {run.path}: {entry.get('seconds')} s for {entry.get('n_clips')} clips; "
          f"recording in the pass {inside.get('pass_seconds')} s, export + statistics + writes "
          f"{inside.get('write_seconds')} s; {inside.get('channels')} channels of {inside.get('layers')} layers")
    for name in rf.INSIDE_FILES:
        path = run / name
        print(f"  {name:<24} {path.stat().st_size / 1e3:10.1f} kB" if path.is_file() else f"  {name:<24} (none)")
    total = sum((run / n).stat().st_size for n in rf.INSIDE_FILES if (run / n).is_file())
    rest = sum(p.stat().st_size for p in run.path.iterdir() if p.is_file() and p.name not in rf.INSIDE_FILES)
    print(f"  inside files {total / 1e6:.2f} MB; the rest of the run {rest / 1e6:.2f} MB")

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    model = load_run(run.path)
    corpus = corpus_from_record(run.manifest()["corpus"])
    cache = feature_cache(model, corpus)
    ids = [c for c in corpus.clip_ids if c in cache][:clips]
    feats = [np.asarray(cache.read(c), np.float32) for c in ids]
    plan = model.taggram_plan()

    def score(recorder: ChannelRecorder | None) -> float:
        started = time.perf_counter()
        for i in range(0, len(feats), 16):
            model.score(feats[i:i + 16], plan=plan, max_batch=4096)
            if recorder is not None:
                recorder.clips_done(list(range(i, min(i + 16, len(feats)))))
        return time.perf_counter() - started

    score(None)  # warm up
    plain, recorded, hooks = [], [], []
    for _ in range(3):  # interleaved, so that the load of a shared machine weighs on both alike
        plain.append(score(None))
        recorder = ChannelRecorder(model.model, model.checkpoint["model_name"], n_clips=len(feats),
                                   waveform=model.features.kind == "waveform", device=model.device)
        with recorder.attached(model):
            recorded.append(score(recorder))
        hooks.append(recorder.seconds)
    plain, recorded = min(plain), min(recorded)
    print(f"pass over {len(feats)} clips: {plain:.2f} s plain, {recorded:.2f} s recorded "
          f"({100 * (recorded - plain) / plain:+.0f}%, fastest of 3 each; {min(hooks):.2f} s inside the hooks, "
          f"{100 * min(hooks) / plain:.0f}% of the plain pass)")


def script_cpu_clock() -> Callable[[], float]:
    """Seconds of CPU spent so far by Streamlit's script thread (what a step costs the server on a busy machine).

    Wraps ``ScriptRunner._run_script_thread``, a Streamlit internal (as ``benchmarks.dashboard``
    does); ONNX Runtime's worker threads are not counted.
    """
    from streamlit.runtime.scriptrunner import script_runner

    spent = [0.0]
    original = script_runner.ScriptRunner._run_script_thread

    def timed(runner, *args, **kwargs):
        started = time.thread_time()
        try:
            return original(runner, *args, **kwargs)
        finally:
            spent[0] += time.thread_time() - started

    script_runner.ScriptRunner._run_script_thread = timed
    return lambda: spent[0]


def interaction(runs: Path, name: str, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, script-thread CPU) seconds of each step of the page (several samples for repeated steps)."""
    os.environ["AUTOTAG_RUNS"] = str(runs)
    from streamlit.testing.v1 import AppTest

    cpu = script_cpu_clock()
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params["run"] = name
    times: dict[str, list[tuple[float, float]]] = {}

    def record(step: str, action: Callable[[], object]) -> None:
        started, cpu_started = time.perf_counter(), cpu()
        action()
        times.setdefault(step, []).append((time.perf_counter() - started, cpu() - cpu_started))
        if at.exception:
            raise RuntimeError(f"{step}: the page raised {at.exception[0].value}")

    record("first load (Overview)", at.run)
    record("first view of Inside the model (ONNX session, the clip's maps)", lambda: at.switch_page(PAGE).run())
    if not [box for box in at.selectbox if box.key == "inside:layer"]:
        said = [e.value for kind in ("error", "warning", "info") for e in getattr(at, kind)]
        raise RuntimeError(f"the page shows no layer picker: {said}")
    layers = [o.split(" · ")[0] for o in at.selectbox(key="inside:layer").options]
    for i in range(repeat):
        record("choose another layer", lambda i=i: at.selectbox(key="inside:layer").set_value(
            layers[(i + 1) % len(layers)]).run())
    layer = at.selectbox(key="inside:layer").value.split(" · ")[0]
    for i in range(repeat):
        box = at.selectbox(key=f"inside:channel:{layer}")
        record("choose another channel (resynthesis)", lambda box=box, i=i: box.set_value(
            int(str(box.options[i + 1]).split(" ")[0])).run())
    clips = [o.split(" · ")[0] for o in at.selectbox(key="w:clip").options]
    for i in range(repeat):
        record("choose another clip (decode, one ONNX pass, resynthesis)",
               lambda i=i: at.selectbox(key="w:clip").set_value(clips[i + 1]).run())
    for i in range(repeat):
        record("back to a clip seen before", lambda i=i: at.selectbox(key="w:clip").set_value(clips[i + 1]).run())
    record("show the filters", lambda: at.toggle(key="inside:filters").set_value(True).run())
    for i in range(repeat):
        record("choose another layer (filters shown)", lambda i=i: at.selectbox(key="inside:layer").set_value(
            layers[i % len(layers)]).run())
    return times


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks inside", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=data_root() / "runs", help="runs folder (default: the data root's)")
    parser.add_argument("--name", default="demo", help="the scored run in it (default: demo)")
    parser.add_argument("--clips", type=int, default=64, help="clips scored to measure the recorder's overhead")
    parser.add_argument("--repeat", type=int, default=3, help="samples of each repeated step (the median is shown)")
    args = parser.parse_args(argv)
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    run = RunDir(args.runs / args.name)
    run.require("score")
    if not (run / rf.INSPECT).is_file():
        print(f"{run.path} has no {rf.INSPECT}: score it again ('python -m pipeline score {run.path} --force')")
        return 2
    precompute(run, args.clips)
    times = interaction(args.runs, args.name, args.repeat)
    width = max(map(len, times))
    print(f"\nInside the model, server times on {args.name} ({os.cpu_count()} CPUs; AppTest, medians; wall = what a "
          "user waits, cpu = the script thread's own work)")
    print(f"{'step':<{width}}  {'wall ms':>8}  {'cpu ms':>8}")
    worst = [0.0, 0.0]
    for step, values in times.items():
        wall = statistics.median(v[0] for v in values) * 1000
        spent = statistics.median(v[1] for v in values) * 1000
        if not step.startswith("first"):
            worst = [max(worst[0], wall), max(worst[1], spent)]
        print(f"{step:<{width}}  {wall:8.0f}  {spent:8.0f}  n={len(values)}")
    print(f"slowest step after the first view: {worst[0]:.0f} ms wall, {worst[1]:.0f} ms cpu "
          f"(target {TARGET_MS:.0f} ms)")
    return 0
