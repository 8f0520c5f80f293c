"""MagnaTagATune: its remote files, as data, and `download_mtt` to fetch and unpack them.

The audio comes as one zip archive cut into three byte ranges (``mp3.zip.001``-``.003``):
they are joined (``cat``), every member's CRC is checked while extracting, and the folders
``0``-``9`` and ``a``-``f`` are moved into the output folder beside the two annotation
files, which `pipeline.sources.loader.load_corpus` then reads. A stamp file marks a finished
download, so a second call returns at once without touching the network.

No checksums are bundled: the dataset's publisher lists none, and a guessed one would
break every real download. Sizes come from the server's Content-Length, and the zip
archive's own CRC-32 of every member catches a corrupt part.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from pipeline.errors import DataFormatError, DownloadError
from pipeline.io import atomic_path, remove_stale_temps, write_json
from pipeline.sources.download import download, part_path
from pipeline.sources.mtt_format import ANNOTATIONS_FILE, AUDIO_FOLDERS, CLIP_INFO_FILE, read_mtt_corpus

log = logging.getLogger(__name__)

MTT_BASE_URL = "https://mirg.city.ac.uk/datasets/magnatagatune/"
DOWNLOADS_DIR = "downloads"  # inside the output folder: the zip parts (kept unless cleanup=True)
ARCHIVE = "mp3.zip"  # the joined archive, removed after extraction
STAMP = ".mtt-complete.json"  # written last: the download, checks and extraction all finished


@dataclass(frozen=True)
class Remote:
    """One remote file: its name, URL and, where published, size and md5 (None when unknown)."""

    filename: str
    url: str
    size: int | None = None
    md5: str | None = None

    def rebased(self, base_url: str) -> Remote:
        """The same file under another base URL (a mirror, or a test server)."""
        return replace(self, url=base_url.rstrip("/") + "/" + self.filename)


def _remote(filename: str) -> Remote:
    return Remote(filename, MTT_BASE_URL + filename)


# Sizes and md5s are left None on purpose: none are published with the dataset, and we do not
# bundle values we could not check. Content-Length and the zip CRCs verify the download instead.
AUDIO_PARTS: tuple[Remote, ...] = (_remote("mp3.zip.001"), _remote("mp3.zip.002"), _remote("mp3.zip.003"))
ANNOTATION_FILES: tuple[Remote, ...] = (_remote(ANNOTATIONS_FILE), _remote(CLIP_INFO_FILE))
REMOTES: dict[str, Remote] = {r.filename: r for r in (*AUDIO_PARTS, *ANNOTATION_FILES)}


def is_complete(out: Path) -> bool:
    """Whether ``out`` holds a finished MagnaTagATune download (stamp, annotations, audio folders)."""
    return ((out / STAMP).is_file() and (out / ANNOTATIONS_FILE).is_file() and (out / CLIP_INFO_FILE).is_file()
            and all((out / d).is_dir() for d in AUDIO_FOLDERS))


def join_parts(parts: list[Path], archive: Path, *, progress: bool = True) -> Path:
    """Concatenate ``parts`` into ``archive`` (like ``cat``), atomically; reused when already joined."""
    total = sum(p.stat().st_size for p in parts)
    if archive.is_file() and archive.stat().st_size == total:
        return archive
    with atomic_path(archive) as tmp, open(tmp, "wb") as out, \
            tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"joining {archive.name}",
                 disable=not progress, leave=False) as bar:
        for part in parts:
            with open(part, "rb") as fh:
                while block := fh.read(1 << 22):
                    out.write(block)
                    bar.update(len(block))
    return archive


def _parts_holding(info: zipfile.ZipInfo, parts: list[Path]) -> list[Path]:
    """The parts whose bytes hold ``info``'s local header and data."""
    start = info.header_offset
    # header (30 bytes + name + extra) plus the compressed data; generous for the extra field
    end = start + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size + 64
    held, offset = [], 0
    for part in parts:
        size = part.stat().st_size
        if offset < end and start < offset + size:
            held.append(part)
        offset += size
    return held or parts[-1:]


def extract_verified(archive: Path, dest_dir: Path, parts: list[Path], *, progress: bool = True) -> int:
    """Extract every member of ``archive`` into ``dest_dir``, checking each member's CRC-32.

    A bad member raises `DownloadError` naming the member and the part(s) that hold it; those
    parts and the joined archive are removed, so that a rerun downloads just them again.
    Returns the number of files extracted.
    """
    parts_text = ", ".join(p.name for p in parts)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        archive.unlink(missing_ok=True)
        raise DownloadError(
            f"{archive} (joined from {parts_text}) is not a readable zip archive: {exc}; a part is truncated or "
            f"corrupt: rerun with --force (force=True) to download the parts again") from None
    n_files = 0
    with zf:
        members = zf.infolist()
        for info in tqdm(members, desc=f"extracting {archive.name}", unit="file", disable=not progress,
                         leave=False):
            try:
                # ZipFile.extract reads the member through ZipExtFile, which checks the CRC-32 at its end.
                zf.extract(info, dest_dir)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                bad = _parts_holding(info, parts)
                for part in bad:
                    part.unlink(missing_ok=True)
                archive.unlink(missing_ok=True)
                raise DownloadError(
                    f"{archive}: member {info.filename!r} is corrupt ({exc}); it lies in "
                    f"{', '.join(p.name for p in bad)}, removed now: rerun to download it again") from None
            n_files += not info.is_dir()
    return n_files


def _move_into_place(staging: Path, out: Path) -> None:
    """Move each top-level entry of ``staging`` into ``out``, replacing a stale one."""
    for entry in sorted(staging.iterdir()):
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(entry, target)


def download_mtt(out: Path, *, base_url: str = MTT_BASE_URL, force: bool = False, progress: bool = True,
                 cleanup: bool = False) -> Path:
    """Download MagnaTagATune into ``out`` so that ``load_corpus(out)`` reads it; idempotent.

    Parameters
    ----------
    out : the corpus folder; receives ``annotations_final.csv``, ``clip_info_final.csv`` and
        the audio folders ``0``-``9``, ``a``-``f`` (zip parts are kept in ``out/downloads``)
    base_url : where the five files live (a mirror; the tests' local server)
    force : download, check and extract everything again, even when already in place
    progress : show progress bars
    cleanup : remove the zip parts once extracted (saves about 3 GB; a later ``force`` then
        downloads them again)

    Returns
    -------
    out

    Raises
    ------
    DownloadError : offline, an HTTP error, a size mismatch, or a corrupt part (named)
    DataFormatError : the downloaded annotation files are malformed
    """
    out = Path(out).expanduser().resolve()
    if not force and is_complete(out):
        log.info("MagnaTagATune is already in %s", out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / STAMP).unlink(missing_ok=True)
    downloads = out / DOWNLOADS_DIR
    remove_stale_temps(out, recursive=True)  # a killed extraction's temps (a ~3 GB archive temp among them)
    remotes = {name: r.rebased(base_url) for name, r in REMOTES.items()}
    if force:
        for name in remotes:
            for path in (out / name, downloads / name):
                path.unlink(missing_ok=True)
                part_path(path).unlink(missing_ok=True)

    for remote in ANNOTATION_FILES:
        r = remotes[remote.filename]
        download(r.url, out / r.filename, expected_size=r.size, md5=r.md5, progress=progress)
    # Validate the annotations before the long audio download: a broken mirror fails fast.
    try:
        raw = read_mtt_corpus(out)
    except DataFormatError as exc:
        raise DataFormatError(f"{exc} (downloaded from {base_url}; delete the file or rerun with --force)") from None

    parts = []
    for remote in AUDIO_PARTS:
        r = remotes[remote.filename]
        parts.append(download(r.url, downloads / r.filename, expected_size=r.size, md5=r.md5, progress=progress))

    archive = join_parts(parts, downloads / ARCHIVE, progress=progress)
    staging = out / ".extracting"
    if staging.exists():
        shutil.rmtree(staging)  # left by a killed run: start the extraction afresh
    try:
        n_files = extract_verified(archive, staging, parts, progress=progress)
        _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink(missing_ok=True)

    missing = [p for p in raw.rel_paths if not (out / p).is_file()]
    if missing:
        log.warning("%d of %d annotated clips have no audio file in the archive (e.g. %s)",
                    len(missing), len(raw.rel_paths), missing[0])
    if cleanup:
        for part in parts:
            part.unlink(missing_ok=True)
    write_json(out / STAMP, {"base_url": base_url, "files": sorted(remotes), "n_audio_files": n_files,
                             "n_clips": len(raw.clip_ids), "n_missing_audio": len(missing)})
    log.info("MagnaTagATune ready in %s: %d clips, %d audio files", out, len(raw.clip_ids), n_files)
    return out
