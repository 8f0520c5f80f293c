"""Atomic file writing: every file is written to a temporary name and moved into place.

A killed process therefore leaves either the old file or the new one, never half of one,
plus its temporary file: ``.<stem>.<owner>.<random>.tmp<suffix>`` beside the target, where
``<owner>`` is ``<host hash>-<pid>`` of the writer. `remove_stale_temps`, called when a stage
starts writing into a folder, deletes the temporary files of writers that are gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ParameterError

# mkstemp creates files readable by their owner only; finished files get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK

log = logging.getLogger(__name__)

# A temp of a writer on another machine (a shared folder), or of a pid that may have been
# reused, is only removed once it has not been touched for this long: no live write pauses
# a whole day between two writes.
STALE_TEMP_AGE_S = 24 * 3600.0
# ".<stem>.<host>-<pid>.<mkstemp's 8 random characters>.tmp<suffix>"; <host>-<pid> is absent
# from temps written before the owner was recorded, which fall back to the age rule.
_TEMP_NAME = re.compile(r"^\..*?\.(?:(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}\.tmp(?:\.[^.]*)?$")


def _host_tag() -> str:
    """Six hex digits naming this machine, so a pid is only checked on the machine it lives on."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def _temp_prefix(path: Path) -> str:
    return f".{path.stem}.{_host_tag()}-{os.getpid()}."


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (unknown counts as alive)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def is_stale_temp(path: Path, *, older_than: float = STALE_TEMP_AGE_S, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary file of `atomic_path` whose writer is gone.

    A temp is stale when its writer's process no longer exists on this machine, or when it
    has not been modified for ``older_than`` seconds (a writer elsewhere, or one too old
    to have recorded its pid). A file not named like one of our temps is never stale.
    """
    match = _TEMP_NAME.match(path.name)
    if match is None:
        return False
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:  # gone already (its writer finished meanwhile)
        return False
    if age > older_than:
        return True
    if match["pid"] is None or match["host"] != _host_tag():
        return False
    pid = int(match["pid"])
    return pid != os.getpid() and not pid_alive(pid)


def remove_stale_temps(folder: str | os.PathLike[str], *, older_than: float = STALE_TEMP_AGE_S,
                       recursive: bool = False) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder``; returns those removed.

    Call it where a stage starts writing into a folder. Temps of live writers (this process
    or another on this machine) are kept, so concurrent writers are safe; see `is_stale_temp`.
    A missing folder has nothing to clean.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in (folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")):
        if path.is_file() and not path.is_symlink() and is_stale_temp(path, older_than=older_than):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    if removed:
        log.info("%s: removed %d temporary file(s) left by interrupted writes", folder, len(removed))
    return removed


def check_folder_path(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` if it is, or can be created as, a folder; else `ParameterError` naming ``what``.

    Catches what ``mkdir(parents=True)`` would turn into a traceback: ``path`` itself, or a
    folder above it, is an existing file.
    """
    path = Path(path).expanduser()
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        if folder.exists() or folder.is_symlink():
            kind = "a file" if folder.exists() else "a broken symlink"
            where = "" if folder == path else f" (on the way to {path})"
            raise ParameterError(f"{what}: {folder} is {kind}, not a folder{where}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    The temporary file keeps ``path``'s suffix so that writers which infer a format from the
    extension (pandas, numpy, torch) still work. On error the temporary file is removed; if
    the process is killed, `remove_stale_temps` removes it later (its name holds our pid).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_default(obj: Any) -> Any:
    """What JSON files store for values JSON cannot hold: paths as strings, numpy values as Python ones."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (paths and numpy values are converted)."""
    write_text(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save one array as ``.npy`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """Save several arrays as an uncompressed ``.npz`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def write_parquet(path: str | os.PathLike[str], frame: Any) -> None:
    """Write a pandas DataFrame to Parquet atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(path: str | os.PathLike[str], frame: Any, **kwargs: Any) -> None:
    """Write a pandas DataFrame to CSV atomically (no index unless asked)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
