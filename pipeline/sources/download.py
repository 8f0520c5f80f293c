"""A resumable, verifying HTTP downloader on the standard library (urllib).

``download(url, dest)`` writes to ``dest.part`` and moves it onto ``dest`` only once the
size (expected, else the server's Content-Length) and the md5 (when given) check out, so an
existing ``dest`` is always a complete file. An interrupted download keeps its part file and
resumes it with an HTTP Range request, within the same call (a few retries) or the next one;
a server that ignores Range gets a fresh download.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from pipeline.errors import DownloadError, ParameterError

log = logging.getLogger(__name__)

USER_AGENT = "music-autotagging-pipeline (python urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_CONTENT_RANGE_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


class _Interrupted(Exception):
    """The connection ended before the whole body arrived (resumable)."""


@dataclass
class _Response:
    """What one GET told us: where the body starts in the file and the file's full size."""

    start: int  # byte offset of the first body byte in the file (0 unless a Range was honoured)
    total: int | None  # full file size, when the server said so


def part_path(dest: Path) -> Path:
    """The partial file a download of ``dest`` writes to (``dest`` + ``.part``)."""
    return dest.with_suffix(dest.suffix + ".part")


def file_md5(path: Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, *, size: int | None, md5: str | None, name: Path | None = None) -> None:
    """Raise DownloadError naming the file, expected and actual values on a mismatch."""
    name = path if name is None else name
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(f"{name}: size mismatch: expected {size} bytes, got {actual_size}")
    if md5 is not None:
        actual_md5 = file_md5(path)
        if actual_md5 != md5.lower():
            raise DownloadError(f"{name}: md5 mismatch: expected {md5.lower()}, got {actual_md5}")


def _unreachable(url: str, reason: object) -> DownloadError:
    return DownloadError(f"cannot reach {url}: {reason}; are you offline? (rerun the same command to resume)")


def _open(url: str, offset: int, timeout: float) -> tuple[http.client.HTTPResponse, _Response] | None:
    """GET ``url`` from byte ``offset``; None when the part file already holds the whole file."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range not satisfiable: the part file is already complete, or longer than the file.
            match = _CONTENT_RANGE_UNSATISFIED.search(exc.headers.get("Content-Range", "") or "")
            exc.close()
            if match and int(match.group(1)) == offset:
                return None
            raise _Interrupted("416") from None  # caller restarts from zero
        exc.close()
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _unreachable(url, exc.reason) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _unreachable(url, exc) from None

    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if offset and response.status == 206:
        match = _CONTENT_RANGE.search(response.headers.get("Content-Range", "") or "")
        if match is None or int(match.group(1)) != offset:
            response.close()
            raise DownloadError(f"{url}: server answered Range bytes={offset}- with "
                                f"Content-Range {response.headers.get('Content-Range')!r}")
        total = int(match.group(3)) if match.group(3) != "*" else None
        return response, _Response(start=offset, total=total)
    if offset:
        log.info("%s: the server ignored the Range request; downloading from the start", url)
    return response, _Response(start=0, total=length)


def _fetch(url: str, part: Path, *, expected_size: int | None, progress: bool, chunk: int,
           timeout: float) -> int | None:
    """One attempt: continue ``part`` from its current size; returns the file's full size if known.

    Raises `_Interrupted` when the body ends early (the part file keeps what arrived).
    """
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        log.warning("%s holds %d bytes, more than the expected %d; starting again", part, offset, expected_size)
        part.unlink()
        offset = 0
    if expected_size is not None and offset == expected_size:
        return expected_size  # complete already; only verification is left
    try:
        opened = _open(url, offset, timeout)
    except _Interrupted:
        part.unlink(missing_ok=True)
        opened = _open(url, 0, timeout)
    if opened is None:
        return offset
    response, info = opened
    total = info.total
    if expected_size is not None and total is not None and total != expected_size:
        response.close()
        raise DownloadError(f"{url}: server reports {total} bytes, expected {expected_size}; "
                            "the remote file changed or the URL is wrong")
    total = expected_size if expected_size is not None else total
    with response, open(part, "r+b" if info.start and part.exists() else "wb") as fh:
        fh.seek(info.start)
        fh.truncate()
        bar = tqdm(total=total, initial=info.start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=not progress, leave=False)
        with bar:
            try:
                while block := response.read(chunk):
                    fh.write(block)
                    bar.update(len(block))
            except (TimeoutError, ConnectionError, http.client.IncompleteRead) as exc:
                raise _Interrupted(str(exc) or type(exc).__name__) from None
        written = fh.tell()
    if total is not None and written < total:
        raise _Interrupted(f"connection closed after {written} of {total} bytes")
    return total


def download(url: str, dest: Path, *, expected_size: int | None = None, md5: str | None = None,
             progress: bool = True, chunk: int = 1 << 20, timeout: float = 30, retries: int = 3) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download; idempotent.

    Parameters
    ----------
    url : an http(s) URL
    dest : the final file; the download goes to ``dest.part`` and is moved into place once verified
    expected_size : the file's size in bytes, when known; otherwise the server's Content-Length is used
    md5 : the file's hex md5, when known
    progress : show a tqdm progress bar
    chunk : bytes read per block
    timeout : seconds to wait for the server (connecting or between blocks)
    retries : how many times an interrupted transfer is resumed within this call

    Returns
    -------
    dest

    Raises
    ------
    DownloadError : offline / unreachable server, an HTTP error, or a size / md5 mismatch
        (the message names the path, the expected and the actual value). A transfer that
        breaks off keeps its part file, and the next call resumes it.
    """
    dest = Path(dest)
    if not url.startswith(("http://", "https://")):
        raise ParameterError(f"url must start with http:// or https://, got {url!r}")
    if chunk < 1 or retries < 0:
        raise ParameterError(f"chunk must be >= 1 and retries >= 0, got chunk={chunk}, retries={retries}")
    if dest.is_file():
        try:
            _verify(dest, size=expected_size, md5=md5)
            log.debug("%s already downloaded", dest)
            return dest
        except DownloadError as exc:
            log.warning("%s; downloading it again", exc)
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    attempt = 0
    while True:
        try:
            total = _fetch(url, part, expected_size=expected_size, progress=progress, chunk=chunk, timeout=timeout)
            break
        except _Interrupted as exc:
            attempt += 1
            if attempt > retries:
                size = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"{url}: download interrupted ({exc}); {size} bytes kept in {part}; "
                                    "rerun the same command to resume") from None
            log.warning("%s: interrupted (%s); resuming (attempt %d of %d)", url, exc, attempt, retries)
            time.sleep(min(0.5 * attempt, 5))
    try:
        _verify(part, size=total, md5=md5, name=dest)
    except DownloadError as exc:
        # A finished transfer with the wrong content cannot be repaired by resuming it.
        part.unlink(missing_ok=True)
        raise DownloadError(f"{exc} (downloaded from {url}; removed the bad download, rerun to fetch it again)") from None
    os.replace(part, dest)
    return dest
