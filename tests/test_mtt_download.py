"""The MagnaTagATune downloader against a fake archive served by the test on 127.0.0.1.

The server supports HTTP Range, and can be told to drop a connection midway, to ignore
Range, or to serve a corrupted part. Nothing here touches the internet.
"""

from __future__ import annotations

import hashlib
import io
import random
import socket
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DownloadError
from pipeline.sources import mtt
from pipeline.sources.corpus import LabelConfig
from pipeline.sources.download import download, part_path
from pipeline.sources.loader import load_corpus
from pipeline.sources.mtt_format import AUDIO_FOLDERS as FOLDERS
from pipeline.sources.mtt_format import write_annotations, write_clip_info

TAGS = ["guitar", "drum", "drums", "classical", "classic", "piano"]


@dataclass
class FakeFiles:
    """What the fake server serves, and how it misbehaves."""

    files: dict[str, bytes]
    drop_after: dict[str, int] = field(default_factory=dict)  # name -> bytes sent before hanging up
    drops_left: dict[str, int] = field(default_factory=dict)  # name -> how many requests to drop
    ignore_range: bool = False
    log: list[tuple[str, str | None]] = field(default_factory=list)  # (name, Range header)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeFiles  # set on the per-server subclass

    def log_message(self, *args: object) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        fake = self.fake
        fake.log.append((name, self.headers.get("Range")))
        if name not in fake.files:
            self.send_error(404, "Not Found")
            return
        data = fake.files[name]
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not fake.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if fake.drops_left.get(name, 0) > 0:
            fake.drops_left[name] -= 1
            # Hang up after part of the body, as a broken connection does.
            self.wfile.write(body[:fake.drop_after[name] - start])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def serve() -> Iterator:
    """Start fake servers: ``serve(fake) -> base_url``; all are shut down after the test."""
    servers = []

    def start(fake: FakeFiles) -> str:
        handler = type("Handler", (_Handler,), {"fake": fake})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/mtt/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _fake_mtt(seed: int = 0) -> dict[str, bytes]:
    """A tiny MTT: two mp3-named files per folder 0-f, its annotations and clip info, zip in 3 parts."""
    rng = random.Random(seed)
    paths = [f"{d}/artist_{d}-album-{k:02d}-song_{k}-0-29.mp3" for d in FOLDERS for k in range(2)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for d in FOLDERS:
            zf.writestr(f"{d}/", b"")
        for p in paths:
            zf.writestr(p, rng.randbytes(3000))
    archive = buf.getvalue()
    third = len(archive) // 3
    parts = [archive[:third], archive[third:2 * third], archive[2 * third:]]

    labels = np.array([[rng.random() < 0.4 for _ in TAGS] for _ in paths], dtype=np.uint8)
    labels[0] = [1, 1, 0, 0, 0, 0]  # known rows: guitar + drum; drums + classic (synonyms only)
    labels[1] = [0, 0, 1, 0, 1, 0]
    clip_ids = [str(i + 2) for i in range(len(paths))]
    info = pd.DataFrame({"clip_id": clip_ids, "track_number": "1", "title": [f"song {i}" for i in range(len(paths))],
                         "artist": "artist", "album": "album", "url": "", "segmentStart": "0",
                         "segmentEnd": "29", "original_url": "", "mp3_path": paths})
    with tempfile.TemporaryDirectory() as tmp:
        write_annotations(Path(tmp) / "annotations_final.csv", clip_ids, TAGS, labels, paths)
        write_clip_info(Path(tmp) / "clip_info_final.csv", info)
        csvs = {name: (Path(tmp) / name).read_bytes() for name in ("annotations_final.csv", "clip_info_final.csv")}
    return {"mp3.zip.001": parts[0], "mp3.zip.002": parts[1], "mp3.zip.003": parts[2], **csvs,
            "_archive": archive, "_paths": "\n".join(paths).encode(), "_labels": labels}


def _served(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not k.startswith("_")}


def test_downloaded_corpus_takes_the_published_splits(tmp_path: Path, serve) -> None:
    """Won et al.'s .npy lists and musicnn's index files, written for the fake MTT, split it as they say."""
    files = _fake_mtt()
    out = mtt.download_mtt(tmp_path / "mtt", base_url=serve(FakeFiles(_served(files))), progress=False)
    paths = files["_paths"].decode().split("\n")
    clip_ids = [str(i + 2) for i in range(len(paths))]
    tagged = {c for c, row in zip(clip_ids, files["_labels"]) if row.any()}
    lists = {"train": clip_ids[:10], "valid": clip_ids[10:14], "test": clip_ids[14:24]}  # the rest in no list
    won = tmp_path / "split" / "mtat"
    won.mkdir(parents=True)
    for name, ids in lists.items():
        np.save(won / f"{name}.npy", np.array([f"{k}\t{paths[clip_ids.index(c)]}" for k, c in enumerate(ids)]))
    musicnn = tmp_path / "index" / "mtt"
    musicnn.mkdir(parents=True)
    for name, ids in lists.items():
        gt = "".join(f"{c}\t{[float(v) for v in files['_labels'][clip_ids.index(c)]]}\n" for c in ids)
        (musicnn / f"{'val' if name == 'valid' else name}_gt_mtt.tsv").write_text(gt)
    (musicnn / "index_mtt.tsv").write_text("".join(f"{c}\t{p}\n" for c, p in zip(clip_ids, paths)))
    for split in (won, musicnn):
        corpus = load_corpus(out, LabelConfig(split=str(split)))
        assert set(corpus.clip_ids) == tagged  # the literature's default: clips with a top-50 tag
        where = dict(zip(corpus.clip_ids, corpus.split))
        for name, ids in lists.items():
            assert {where[c] for c in ids if c in tagged} == {name}
        assert {where[c] for c in clip_ids[24:] if c in tagged} <= {"none"}


def test_full_download_loads_as_corpus(tmp_path: Path, serve) -> None:
    files = _fake_mtt()
    fake = FakeFiles(_served(files))
    out = mtt.download_mtt(tmp_path / "mtt", base_url=serve(fake), progress=False)

    assert mtt.is_complete(out)
    paths = files["_paths"].decode().split("\n")
    with zipfile.ZipFile(io.BytesIO(files["_archive"])) as zf:
        for p in paths:
            assert (out / p).read_bytes() == zf.read(p)
    assert not (out / "downloads" / "mp3.zip").exists()  # the joined archive is removed
    assert not list(out.rglob("*.part")) and not (out / ".extracting").exists()

    # The literature's protocol by default: synonyms kept apart, clips without any tag left out.
    tagged = [p for p, row in zip(paths, files["_labels"]) if row.any()]
    corpus = load_corpus(out)
    assert len(corpus) == len(tagged) and corpus.source == "mtt" and not corpus.demo
    assert corpus.rel_paths == tagged and all(p.is_file() for p in corpus.audio_paths)
    assert sorted(corpus.tags) == sorted(TAGS)
    assert corpus.tag_lists(np.array([0, 1])) == [["guitar", "drum"], ["drums", "classic"]]
    # drum/drums and classical/classic merged on request, every clip kept on request
    merged = load_corpus(out, LabelConfig(merge_synonyms=True, drop_untagged=False))
    assert len(merged) == len(paths) and merged.rel_paths == paths
    assert merged.tags == ["guitar", "drum", "classical", "piano"]
    assert merged.tag_lists(np.array([0, 1])) == [["guitar", "drum"], ["drum", "classical"]]
    assert merged.split_sizes() == {"train": 24, "valid": 2, "test": 6}
    assert corpus.metadata.loc[0, "title"] == "song 0"


def test_second_call_makes_no_request(tmp_path: Path, serve) -> None:
    fake = FakeFiles(_served(_fake_mtt()))
    base = serve(fake)
    out = mtt.download_mtt(tmp_path / "mtt", base_url=base, progress=False)
    n_requests = len(fake.log)
    assert n_requests == 5
    assert mtt.download_mtt(out, base_url=base, progress=False) == out
    assert len(fake.log) == n_requests
    # force downloads everything again
    mtt.download_mtt(out, base_url=base, progress=False, force=True)
    assert len(fake.log) == 2 * n_requests and mtt.is_complete(out)


def test_interrupted_part_resumes_with_range(tmp_path: Path, serve) -> None:
    files = _fake_mtt()
    half = len(files["mp3.zip.002"]) // 2
    fake = FakeFiles(_served(files), drop_after={"mp3.zip.002": half}, drops_left={"mp3.zip.002": 1})
    out = mtt.download_mtt(tmp_path / "mtt", base_url=serve(fake), progress=False, cleanup=False)

    requests = [rng for name, rng in fake.log if name == "mp3.zip.002"]
    assert requests == [None, f"bytes={half}-"]
    assert (out / "downloads" / "mp3.zip.002").read_bytes() == files["mp3.zip.002"]
    assert len(load_corpus(out)) == 32


def test_interrupted_download_resumes_on_next_call(tmp_path: Path, serve) -> None:
    data = random.Random(1).randbytes(50_000)
    fake = FakeFiles({"blob.bin": data}, drop_after={"blob.bin": 20_000}, drops_left={"blob.bin": 1})
    url = serve(fake) + "blob.bin"
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match="interrupted.*20000 bytes kept.*rerun"):
        download(url, dest, progress=False, retries=0, chunk=4096)
    assert part_path(dest).stat().st_size == 20_000 and not dest.exists()

    md5 = hashlib.md5(data).hexdigest()
    assert download(url, dest, progress=False, md5=md5, expected_size=len(data)) == dest
    assert fake.log == [("blob.bin", None), ("blob.bin", "bytes=20000-")]
    assert dest.read_bytes() == data and not part_path(dest).exists()


def test_server_ignoring_range_restarts(tmp_path: Path, serve) -> None:
    data = random.Random(2).randbytes(10_000)
    fake = FakeFiles({"blob.bin": data}, ignore_range=True)
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes(b"stale bytes from another file")
    download(serve(fake) + "blob.bin", dest, progress=False)
    assert fake.log[0][1] == "bytes=29-"  # asked to resume, got the whole file
    assert dest.read_bytes() == data


def test_complete_part_file_is_finished_without_body(tmp_path: Path, serve) -> None:
    data = random.Random(3).randbytes(5_000)
    fake = FakeFiles({"blob.bin": data})
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes(data)  # killed after the last byte, before the move
    download(serve(fake) + "blob.bin", dest, progress=False)
    assert fake.log == [("blob.bin", "bytes=5000-")]  # answered 416: nothing left to send
    assert dest.read_bytes() == data


def test_corrupt_part_is_detected(tmp_path: Path, serve) -> None:
    files = _fake_mtt()
    part2 = bytearray(files["mp3.zip.002"])
    offset1 = len(files["mp3.zip.001"])
    # Flip a byte in the data of a member lying wholly inside part 2 (same size: only the CRC can tell).
    with zipfile.ZipFile(io.BytesIO(files["_archive"])) as zf:
        member = next(i for i in zf.infolist() if not i.is_dir() and i.header_offset > offset1 + 100
                      and i.header_offset + 200 + i.compress_size < offset1 + len(part2))
    data_at = member.header_offset + 30 + len(member.filename) + 50 - offset1
    part2[data_at] ^= 0xFF
    fake = FakeFiles({**_served(files), "mp3.zip.002": bytes(part2)})
    base = serve(fake)
    out = tmp_path / "mtt"
    with pytest.raises(DownloadError) as info:
        mtt.download_mtt(out, base_url=base, progress=False)
    message = str(info.value)
    assert member.filename in message and "mp3.zip.002" in message and "CRC" in message
    assert not mtt.is_complete(out) and not (out / "0").exists()
    # The bad part was removed (the others kept), so a rerun against a good server fetches only it.
    assert not (out / "downloads" / "mp3.zip.002").exists()
    assert (out / "downloads" / "mp3.zip.001").exists()
    fake.files["mp3.zip.002"] = files["mp3.zip.002"]
    fake.log.clear()
    mtt.download_mtt(out, base_url=base, progress=False)
    assert [name for name, _ in fake.log] == ["mp3.zip.002"]
    assert mtt.is_complete(out) and len(load_corpus(out)) == 32


def test_truncated_archive_is_detected(tmp_path: Path, serve) -> None:
    files = _fake_mtt()
    fake = FakeFiles({**_served(files), "mp3.zip.003": files["mp3.zip.003"][:-40]})
    with pytest.raises(DownloadError, match=r"not a readable zip archive.*--force"):
        mtt.download_mtt(tmp_path / "mtt", base_url=serve(fake), progress=False)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_is_a_clear_error(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_unused_port()}/mtt/"
    with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1:\d+/mtt/annotations_final\.csv"
                                            r".*are you offline"):
        mtt.download_mtt(tmp_path / "mtt", base_url=base, progress=False)
    assert not list((tmp_path / "mtt").glob("*.csv"))


def test_http_error_names_url(tmp_path: Path, serve) -> None:
    base = serve(FakeFiles({}))
    with pytest.raises(DownloadError, match=r"/mtt/missing\.bin: HTTP 404"):
        download(base + "missing.bin", tmp_path / "missing.bin", progress=False)


def test_md5_mismatch_names_path_and_values(tmp_path: Path, serve) -> None:
    data = b"x" * 1000
    fake = FakeFiles({"blob.bin": data})
    dest = tmp_path / "blob.bin"
    wrong = "0" * 32
    with pytest.raises(DownloadError) as info:
        download(serve(fake) + "blob.bin", dest, md5=wrong, progress=False)
    message = str(info.value)
    assert str(dest) in message and wrong in message and hashlib.md5(data).hexdigest() in message
    assert not dest.exists() and not part_path(dest).exists()  # a bad finished file is not resumed


def test_size_mismatch_names_values(tmp_path: Path, serve) -> None:
    fake = FakeFiles({"blob.bin": b"y" * 1000})
    with pytest.raises(DownloadError, match="server reports 1000 bytes, expected 999"):
        download(serve(fake) + "blob.bin", tmp_path / "blob.bin", expected_size=999, progress=False)


def test_existing_bad_file_is_downloaded_again(tmp_path: Path, serve) -> None:
    data = b"z" * 2000
    fake = FakeFiles({"blob.bin": data})
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"z" * 10)
    download(serve(fake) + "blob.bin", dest, expected_size=len(data), progress=False)
    assert dest.read_bytes() == data
    download(serve(fake) + "blob.bin", dest, expected_size=len(data), progress=False)
    assert len(fake.log) == 1  # the verified file is reused


def test_remotes_are_data() -> None:
    assert list(mtt.REMOTES) == ["mp3.zip.001", "mp3.zip.002", "mp3.zip.003", "annotations_final.csv",
                                 "clip_info_final.csv"]
    assert all(r.url == mtt.MTT_BASE_URL + name for name, r in mtt.REMOTES.items())
    assert all(r.md5 is None and r.size is None for r in mtt.REMOTES.values())  # none published; none invented
    assert mtt.REMOTES["mp3.zip.001"].rebased("http://host/x").url == "http://host/x/mp3.zip.001"
