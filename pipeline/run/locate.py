"""Where a run's corpus and audio files are: a root that can move, paths confined under it.

A run stores its corpus root in the manifest (absolute, or relative to the data root) and every
audio path relative to that root (predictions.parquet ``audio_path``). A corpus that moved is
re-pointed without touching the run: ``$MUSICTAG_CORPUS_ROOT`` (or the dashboard's
``--corpus-root``) holds either one folder, used for every run, or ``NAME=DIR`` entries
separated by ``os.pathsep`` (``:`` on Linux / macOS), one per corpus name.

A run folder is untrusted input, so an audio path is resolved under the corpus root and
refused when it leaves it (an absolute path elsewhere, ``..``, a symlink pointing out).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pipeline.errors import ParameterError, RunDirError
from pipeline.paths import data_root

CORPUS_ROOT_ENV = "MUSICTAG_CORPUS_ROOT"  # re-points a moved corpus: DIR, or NAME=DIR[:NAME=DIR...]


def parse_override(text: str | None) -> tuple[Path | None, dict[str, Path]]:
    """(folder for every corpus, {corpus name: folder}) from an override value (see the module docstring)."""
    default: Path | None = None
    named: dict[str, Path] = {}
    for entry in (text or "").split(os.pathsep):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, folder = entry.partition("=")
        if sep and name and folder:
            named[name.strip()] = Path(folder.strip()).expanduser()
        elif sep:
            raise ParameterError(f"{CORPUS_ROOT_ENV}: entry {entry!r} should be NAME=DIR or DIR")
        else:
            default = Path(entry).expanduser()
    return default, named


def corpus_root(name: str, stored: str, override: str | None = None) -> Path:
    """The folder of corpus ``name`` whose manifest records ``stored``.

    ``override`` (the dashboard's ``--corpus-root``) comes first, then ``$MUSICTAG_CORPUS_ROOT``,
    then the stored root (a relative one is taken from the data root). The folder may not exist:
    callers report a missing corpus with `repoint_hint`.
    """
    for text in (override, os.environ.get(CORPUS_ROOT_ENV)):
        default, named = parse_override(text)
        if name in named:
            return named[name].resolve()
        if default is not None:
            return default.resolve()
    return stored_root(stored)


def stored_root(stored: str) -> Path:
    """The corpus folder a manifest records, as recorded (no re-pointing): a relative one is under the data root.

    What identifies a corpus whatever folder it moved to (its verdict database,
    `pipeline.review.store.database_path`); `corpus_root` says where it is today.
    """
    path = Path(stored).expanduser()
    return (path if path.is_absolute() else data_root() / path).resolve()


def portable_root(path: str | os.PathLike[str]) -> str:
    """How a manifest stores corpus root ``path``: relative to the data root when inside it, else absolute."""
    path = Path(path).expanduser().resolve()
    try:
        return path.relative_to(data_root().resolve()).as_posix()
    except ValueError:
        return str(path)


def repoint_hint(name: str) -> str:
    """One line saying how to re-point corpus ``name`` at the folder it moved to."""
    return (f"re-point it with {CORPUS_ROOT_ENV}={name}=DIR (or the dashboard's --corpus-root DIR); "
            "the run itself needs no change")


def relative_audio_path(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """``path`` as stored in a run: POSIX, relative to ``root``; a path outside ``root`` is a `RunDirError`."""
    root = Path(root).expanduser().resolve()
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        try:
            rel = PurePosixPath(candidate.resolve().relative_to(root).as_posix())
        except ValueError:
            raise RunDirError(f"audio path {str(path)!r} is outside the corpus root {root}") from None
    else:
        rel = PurePosixPath(Path(path).as_posix())
    if _escapes(rel):
        raise RunDirError(f"audio path {str(path)!r} leaves the corpus root {root}")
    return str(rel)


def relative_audio_paths(paths: Iterable[str | os.PathLike[str]], root: str | os.PathLike[str]) -> list[str]:
    """`relative_audio_path` of many paths (one resolve of the root)."""
    root = Path(root).expanduser().resolve()
    return [relative_audio_path(p, root) for p in paths]


def _escapes(rel: PurePosixPath) -> bool:
    """True when a relative path is absolute or climbs above its root (``a/../../x``)."""
    if rel.is_absolute() or str(rel) in ("", "."):
        return True
    depth = 0
    for part in rel.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def confined_audio_path(stored: str, root: str | os.PathLike[str]) -> Path:
    """The file a run's ``audio_path`` names, resolved under ``root``; a `RunDirError` when it leaves it.

    An absolute ``stored`` path is accepted only when it lies under ``root`` (runs written before
    paths were made relative). Symlinks are resolved before the check, so a link inside the
    corpus that points elsewhere is refused too.
    """
    root = Path(root).resolve()
    if not stored:
        raise RunDirError("the run records no audio path for this clip")
    path = Path(stored)
    if not path.is_absolute():
        if _escapes(PurePosixPath(path.as_posix())):
            raise RunDirError(f"audio path {stored!r} leaves the corpus root; refused")
        path = root / path
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise RunDirError(f"audio path {stored!r} is outside the corpus root {root}; refused")
    return resolved
