"""``python -m benchmarks dashboard``: dashboard server times on a MagnaTagATune-scale run.

Builds (or reuses) a synthetic run directory (`benchmarks.synthetic_run`, 25,863 clips x 50 tags
by default) and drives the app with Streamlit's `AppTest`, which runs the scripts exactly as
the server does, without a browser. Each ``.run()`` is timed: the first load of a fresh
process, the first visit of every page, a revisit of every page, and the selections a user
makes (a clip, a tag, the threshold, the split, tuned thresholds, a section). Times are server
times (script run plus building the page's elements), not network or browser rendering.

Targets (issue 5): first load within 5 s; page switches and selections after the first load
within 300 ms.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.synthetic_run import MTT_CLIPS, build_synthetic_run
from pipeline.paths import REPO

log = logging.getLogger(__name__)

APP = REPO / "dashboard" / "app.py"
PAGES = ("overview", "clip_explorer", "tag_metrics", "error_analysis", "tag_map", "tag_a_file", "compare_runs", "review")
FIRST_LOAD_TARGET_S = 5.0
INTERACTION_TARGET_MS = 300.0


def reusable_synthetic_run(out: Path, clips: int, tags: int) -> bool:
    """True when ``out`` already holds a complete synthetic run of this size."""
    from pipeline.errors import RunDirError
    from pipeline.run.rundir import RunDir

    run = RunDir(out)
    if not run.exists():
        return False
    try:
        manifest = run.read_manifest()
    except RunDirError:  # unreadable, invalid or of another schema version: build again
        return False
    config = (manifest.config or {}).get("synthetic") or {}
    return (manifest.synthetic and config.get("n_clips") == clips and config.get("n_tags") == tags
            and not run.missing_stages())


class ScriptClock:
    """CPU seconds spent by Streamlit's script thread (wall time on a shared machine also counts waiting).

    Wraps ``ScriptRunner._run_script_thread``, a Streamlit internal; when it is absent the
    benchmark reports wall times only.
    """

    def __init__(self) -> None:
        self.cpu = 0.0
        try:
            from streamlit.runtime.scriptrunner import script_runner
        except ImportError:
            self.available = False
            return
        original = getattr(script_runner.ScriptRunner, "_run_script_thread", None)
        self.available = original is not None
        if not self.available:
            return
        clock = self

        def timed(runner, *args, **kwargs):
            started = time.thread_time()
            try:
                return original(runner, *args, **kwargs)
            finally:
                clock.cpu += time.thread_time() - started

        script_runner.ScriptRunner._run_script_thread = timed


def _timed(step: Callable[[], object], clock: ScriptClock) -> tuple[float, float]:
    cpu = clock.cpu
    started = time.perf_counter()
    step()
    return time.perf_counter() - started, clock.cpu - cpu


def _check(at, what: str) -> None:
    if at.exception:
        raise RuntimeError(f"{what}: the page raised {at.exception[0].value}")


def measure(runs_root: Path, *, repeat: int = 3,
            timeout: float = 120.0) -> tuple[dict[str, list[tuple[float, float]]], bool]:
    """Drive the app over ``runs_root``.

    Returns {step: [(wall seconds, script-thread CPU seconds), ...]} (several samples for
    repeated steps) and whether CPU times were measured.
    """
    os.environ["AUTOTAG_RUNS"] = str(runs_root)
    from streamlit.testing.v1 import AppTest

    clock = ScriptClock()
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    times: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, step: Callable[[], object], before: Callable[[], object] | None = None) -> None:
        if before is not None:
            before()
        times.setdefault(name, []).append(_timed(step, clock))
        _check(at, name)

    def forget_audio() -> None:
        # The synthetic run shares a few audio files between all clips; MagnaTagATune has one
        # file a clip, so a newly chosen clip must be decoded: empty the audio caches first.
        from dashboard import loaders

        loaders.audio_bytes.clear()
        loaders.mel_spectrogram.clear()

    record("first load (Overview)", at.run)
    for page in PAGES[1:]:
        record(f"first visit: {page}", lambda p=page: at.switch_page(f"views/{p}.py").run())
    for _ in range(repeat):
        for page in PAGES:
            record(f"page switch: {page}", lambda p=page: at.switch_page(f"views/{p}.py").run())

    at.switch_page("views/clip_explorer.py").run()
    clip = at.selectbox(key="w:clip")
    options = [o.split(" · ")[0] for o in clip.options]  # the picker shows "id · file"
    for i in range(repeat):
        record("clip explorer: choose another clip (decode, spectrogram)",
               lambda i=i: at.selectbox(key="w:clip").set_value(options[(i + 1) % len(options)]).run(), forget_audio)
    for i in range(repeat):
        record("clip explorer: back to a clip seen before",
               lambda i=i: at.selectbox(key="w:clip").set_value(options[(i + 1) % len(options)]).run())
    for i in range(repeat):
        record("clip explorer: move the threshold",
               lambda i=i: at.slider(key="w:threshold").set_value(0.3 + 0.1 * i).run())
    record("clip explorer: search text", lambda: at.text_input(key="explorer:search").set_value("syn0012").run())

    at.switch_page("views/tag_metrics.py").run()
    tags = list(at.selectbox(key="w:tag").options)
    for i in range(repeat):
        record("tag metrics: choose a tag (ROC / PR curves)",
               lambda i=i: at.selectbox(key="w:tag").set_value(tags[(i + 1) % len(tags)]).run())
    for i in range(repeat):
        record("tag metrics: move the threshold", lambda i=i: at.slider(key="w:threshold").set_value(0.4 + 0.1 * i).run())
    record("tag metrics: switch to all splits", lambda: at.selectbox(key="w:split").set_value("all").run())
    record("tag metrics: back to the test split", lambda: at.selectbox(key="w:split").set_value("test").run())
    record("tag metrics: per-tag tuned thresholds", lambda: at.toggle(key="w:tuned").set_value(True).run())
    at.toggle(key="w:tuned").set_value(False).run()

    at.switch_page("views/error_analysis.py").run()
    for i in range(repeat):
        record("error analysis: choose a tag", lambda i=i: at.selectbox(key="w:tag").set_value(tags[i + 3]).run())
    for section in ("issues", "contradictions", "errors"):
        record(f"error analysis: show {section}",
               lambda s=section: at.segmented_control(key="errors:section").set_value(s).run())

    at.switch_page("views/tag_map.py").run()
    for mode in ("outcome", "label", "probability"):
        record(f"tag map: clip map by {mode}", lambda m=mode: at.segmented_control(key="map:clip_mode").set_value(m).run())
    record("tag map: colour tags by ROC-AUC", lambda: at.segmented_control(key="map:color").set_value("roc_auc").run())

    # The review queue: each answer is saved to the corpus's verdict database, then the next
    # question (a new clip: decoded for its spectrogram) loads. AppTest reruns the whole page where
    # the browser reruns only the question panel (a fragment), so these are upper bounds.
    at.switch_page("views/review.py").run()
    for verdict in ("present", "absent", "unsure") * repeat:
        record("review queue: answer, next question loads",
               lambda v=verdict: at.button(key=f"review:answer:{v}").click().run(), forget_audio)
    record("review queue: undo the last answer", lambda: at.button(key="review:undo").click().run())
    record("review queue: skip", lambda: at.button(key="review:skip").click().run(), forget_audio)
    return times, clock.available


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=MTT_CLIPS, help="clips in the synthetic run (MTT: 25863)")
    parser.add_argument("--tags", type=int, default=50, help="tags in the synthetic run")
    parser.add_argument("--out", type=Path, default=None,
                        help="runs folder to build the synthetic run in and keep (default: a temporary folder)")
    parser.add_argument("--repeat", type=int, default=3, help="samples of each repeated step (the median is shown)")
    args = parser.parse_args(argv)
    logging.getLogger("streamlit").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        root = (args.out or Path(tmp)).expanduser().resolve()
        # The review queue's answers go to a verdict database of the benchmark's own, never the user's.
        os.environ["MUSICTAG_REVIEWS"] = str(Path(tmp) / "reviews")
        run_dir = root / f"synthetic-{args.clips}"
        if reusable_synthetic_run(run_dir, args.clips, args.tags):
            print(f"reusing {run_dir}")
        else:
            started = time.perf_counter()
            build_synthetic_run(run_dir, n_clips=args.clips, n_tags=args.tags)
            print(f"built {run_dir} ({args.clips:,} clips x {args.tags} tags) in {time.perf_counter() - started:.1f} s")
        times, has_cpu = measure(root, repeat=args.repeat)

    width = max(map(len, times))
    print(f"\ndashboard server times, {args.clips:,} clips x {args.tags} tags, {os.cpu_count()} CPUs "
          f"(AppTest; medians; wall = what a user waits, cpu = the script thread's own work)")
    print(f"{'step':<{width}}  {'wall ms':>8}  {'cpu ms':>8}  {'n':>2}")
    worst_wall = worst_cpu = 0.0
    for name, values in times.items():
        wall = statistics.median(v[0] for v in values) * 1000
        cpu = statistics.median(v[1] for v in values) * 1000
        print(f"{name:<{width}}  {wall:8.0f}  {cpu if has_cpu else float('nan'):8.0f}  {len(values):>2}")
        if not name.startswith("first load"):
            worst_wall, worst_cpu = max(worst_wall, wall), max(worst_cpu, cpu)
    first = times["first load (Overview)"][0][0]
    print(f"\nfirst load {first:.2f} s (target {FIRST_LOAD_TARGET_S:.0f} s): "
          f"{'ok' if first <= FIRST_LOAD_TARGET_S else 'SLOW'}")
    print(f"slowest page switch / selection after loading: {worst_wall:.0f} ms wall, {worst_cpu:.0f} ms cpu "
          f"(target {INTERACTION_TARGET_MS:.0f} ms): {'ok' if worst_wall <= INTERACTION_TARGET_MS else 'SLOW'}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
