"""Atomic writes: the temp name records its writer; stale temps of killed writers are removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.errors import ParameterError
from pipeline.io import (
    STALE_TEMP_AGE_S,
    atomic_path,
    check_folder_path,
    is_stale_temp,
    remove_stale_temps,
    write_text,
)

REPO = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temp_like(folder: Path, stem: str, owner_pid: int | None, suffix: str = ".npy") -> Path:
    """A file named like `atomic_path`'s temp of ``owner_pid`` (None: the older name without a pid)."""
    with atomic_path(folder / f"{stem}{suffix}") as tmp:
        name = tmp.name
    if owner_pid is not None:
        name = name.replace(f"-{os.getpid()}.", f"-{owner_pid}.")
    else:
        head, _, rest = name.partition(f"-{os.getpid()}.")
        name = head.rsplit(".", 1)[0] + "." + rest  # drop "<host>-<pid>."
    path = folder / name
    path.write_bytes(b"partial")
    return path


def test_temp_name_records_the_writer(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "data.npy") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".data.") and tmp.name.endswith(".tmp.npy")
        assert f"-{os.getpid()}." in tmp.name
        tmp.write_bytes(b"x")
        assert not is_stale_temp(tmp)  # our own, being written
    assert (tmp_path / "data.npy").read_bytes() == b"x" and not tmp.exists()


def test_stale_temps_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = temp_like(tmp_path, "taggrams", dead_pid())
        live = temp_like(tmp_path, "taggrams", sleeper.pid)  # a concurrent writer still filling it
        ours = temp_like(tmp_path, "index", os.getpid(), ".parquet")
        legacy = temp_like(tmp_path, "old", None, ".csv")  # no pid: the age rule only
        old_legacy = temp_like(tmp_path, "older", None, ".csv")
        week_ago = time.time() - 7 * 24 * 3600
        os.utime(old_legacy, (week_ago, week_ago))
        keep = [tmp_path / ".hidden", tmp_path / "data.npy", tmp_path / ".notes.tmp"]  # not named like our temps
        for path in keep:
            path.write_text("mine")
        os.utime(keep[2], (week_ago, week_ago))
        assert not is_stale_temp(legacy) and is_stale_temp(old_legacy) and is_stale_temp(dead)

        removed = remove_stale_temps(tmp_path)
        assert sorted(removed) == sorted([dead, old_legacy])
        assert all(p.exists() for p in (live, ours, legacy, *keep))
        # a live writer's temp goes only once it has not been touched for the age limit
        assert is_stale_temp(live, now=time.time() + STALE_TEMP_AGE_S + 1)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_temps(tmp_path) == [live]  # its writer is gone now
    assert remove_stale_temps(tmp_path / "missing") == []


def test_recursive_cleanup(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    deep = temp_like(tmp_path / "a" / "b", "x", dead_pid())
    assert remove_stale_temps(tmp_path) == [] and deep.exists()
    assert remove_stale_temps(tmp_path, recursive=True) == [deep]


def test_a_killed_writer_leaves_a_temp_that_cleanup_removes(tmp_path: Path) -> None:
    target = tmp_path / "taggrams.npy"
    script = textwrap.dedent(f"""
        import sys, time
        from pipeline.io import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"0" * 100000)
            print(tmp, flush=True)
            time.sleep(60)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.is_file()
        assert remove_stale_temps(tmp_path) == []  # still being written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert tmp.is_file() and not target.exists()  # what a kill -9 leaves behind
    assert remove_stale_temps(tmp_path) == [tmp] and not tmp.exists()


def test_check_folder_path(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("")
    assert check_folder_path(tmp_path / "new" / "deeper", "--out") == tmp_path / "new" / "deeper"
    assert check_folder_path(tmp_path, "--out") == tmp_path
    with pytest.raises(ParameterError, match=rf"^--out: {a_file} is a file, not a folder$"):
        check_folder_path(a_file, "--out")
    with pytest.raises(ParameterError, match=rf"^--out: {a_file} is a file, not a folder \(on the way to {a_file}/x/y\)$"):
        check_folder_path(a_file / "x" / "y", "--out")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ParameterError, match="is a broken symlink"):
        check_folder_path(tmp_path / "link" / "x", "--out")
    write_text(tmp_path / "ok" / "a.txt", "fine")  # the writers still create missing folders
