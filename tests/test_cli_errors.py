"""Every user error of the CLI is one line, ``error: ...`` naming the path or option, exit 2.

Each case runs the command's real entry point, ``pipeline.cli.main.main(argv)``, in this
process (a subprocess costs two seconds of imports a case); `test_the_real_process` checks
that ``python -m pipeline`` itself prints the same one line.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.cli.main import main

REPO = Path(__file__).resolve().parents[1]
SR = 16000


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path) -> Result:
    """``python -m pipeline ARGS`` through its entry point, with its exit status and output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code if isinstance(exc.code, int) else 2
    return Result(code, out.getvalue(), err.getvalue())


def run_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` in a subprocess, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


def assert_one_line_error(proc: Result | subprocess.CompletedProcess[str], *needles: str | Path) -> str:
    """Exit 2, no traceback, and a last stderr line ``error: ...`` holding every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), proc.stderr
    for needle in needles:
        assert str(needle) in line, (needle, line)
    return line


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a folder\n")
    return path


@pytest.fixture
def music(tmp_path: Path) -> Path:
    """A folder corpus of two short tones."""
    root = tmp_path / "music"
    root.mkdir()
    t = np.arange(SR // 2) / SR
    for i, freq in enumerate((220.0, 440.0)):
        sf.write(root / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return root


@pytest.mark.parametrize("sub", ["", "sub"])
def test_data_out_is_a_file(a_file: Path, sub: str) -> None:
    out = a_file / sub if sub else a_file
    assert_one_line_error(run_cli("data", "mtt", "--out", out), "--out", a_file, "is a file")
    assert_one_line_error(run_cli("data", "demo", "--out", out, "--clips", "2"), "--out", a_file)


def test_demo_data_is_a_file(a_file: Path, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("demo", "--data", a_file), "--data", a_file, "is a file")
    data = tmp_path / "data"
    data.mkdir()
    (data / "demo").write_text("")  # where the corpus goes
    assert_one_line_error(run_cli("demo", "--data", data), "--data", data / "demo", "is a file")


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--epochs", "-1", "epochs must be >= 1, got -1"),
    ("--epochs", "0", "epochs must be >= 1, got 0"),
    ("--clips", "0", "clips must be a positive integer, got 0"),
    ("--seconds", "0.5", "seconds must be between 1 and 600, got 0.5"),
    ("--seed", "-3", "seed must be a non-negative integer, got -3"),
])
def test_demo_rejects_bad_numbers_before_building_anything(tmp_path: Path, option: str, value: str,
                                                           needle: str) -> None:
    data = tmp_path / "data"
    assert_one_line_error(run_cli("demo", "--data", data, "--clips", "3", option, value), needle)
    assert not data.exists() or not any(data.rglob("*")), sorted(data.rglob("*"))  # no corpus, no features


def test_features_cache_root_is_a_file(music: Path, a_file: Path) -> None:
    assert_one_line_error(run_cli("features", music, "--cache-root", a_file), "--cache-root", a_file, "is a file")
    assert_one_line_error(run_cli("features", music, "--cache-root", a_file / "caches"), "--cache-root", a_file)
    assert not any(p.name != "tone0.wav" and p.name != "tone1.wav" for p in music.iterdir())


def test_features_bad_corpus_paths(tmp_path: Path, a_file: Path) -> None:
    missing = tmp_path / "nowhere"
    assert_one_line_error(run_cli("features", missing), missing, "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli("features", empty), empty, "no clips")
    song = tmp_path / "song.mp3"
    song.write_text("<html>not audio</html>")
    assert_one_line_error(run_cli("features", song), "CORPUS_DIR", song, "is a file")
    assert_one_line_error(run_cli("features", a_file), "CORPUS_DIR", a_file)


def test_features_folder_of_non_audio_reports_every_file(tmp_path: Path) -> None:
    root = tmp_path / "junk"
    root.mkdir()
    (root / "a.mp3").write_text("<html>404</html>")
    (root / "b.wav").write_bytes(b"")
    proc = run_cli("features", root, "--workers", "1", "--no-progress")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "0 of 2 clips cached, 2 failed" in proc.stdout
    assert "not audio 1" in proc.stdout and "empty 1" in proc.stdout


def test_tag_taggram_under_a_file(a_file: Path, tmp_path: Path) -> None:
    # checked before the run is even opened: nothing is tagged only to fail at the end
    run = tmp_path / "no-run"
    for taggram in (a_file / "x.csv", a_file / "deeper" / "x.png"):
        assert_one_line_error(run_cli("tag", a_file, "--run", run, "--taggram", taggram), "--taggram", a_file,
                              "is a file")
    folder = tmp_path / "out.csv"
    folder.mkdir()
    assert_one_line_error(run_cli("tag", a_file, "--run", run, "--taggram", folder), "--taggram", folder,
                          "is a folder")


def test_tag_bad_paths_and_numbers(tmp_path: Path, a_file: Path) -> None:
    for run in (tmp_path / "nowhere", a_file, tmp_path):
        assert_one_line_error(run_cli("tag", a_file, "--run", run), run)
    for option, value in (("--threads", "0"), ("--threads", "-1"), ("--top", "0")):
        assert_one_line_error(run_cli("tag", a_file, "--run", tmp_path, option, value), option, f"got {value}")


def test_tag_bad_audio_is_reported_per_file(tiny_run: Path, tmp_path: Path) -> None:
    """A missing file, a folder without audio, a non-audio file: one line each, exit 1, the rest still tagged."""
    missing, folder, junk = tmp_path / "gone.mp3", tmp_path / "folder.wav", tmp_path / "junk.mp3"
    folder.mkdir()
    junk.write_text("<html>404</html>")
    proc = run_cli("tag", missing, folder, junk, "--run", tiny_run)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3
    assert f"{folder}: no audio files" in errors[0]  # a folder is searched for audio files
    assert f"{missing}: missing" in errors[1] and f"{junk}: not audio" in errors[2]
    assert "3 of 3 file(s) could not be tagged" in proc.stderr


def test_the_real_process(a_file: Path, music: Path) -> None:
    """The same one line from ``python -m pipeline`` itself: no traceback on the way out."""
    line = assert_one_line_error(run_process("data", "mtt", "--out", a_file / "mtt"), "--out", a_file, "is a file")
    assert line == f"error: --out: {a_file} is a file, not a folder (on the way to {a_file / 'mtt'})"
    assert_one_line_error(run_process("features", music, "--cache-root", a_file), "--cache-root", a_file)
