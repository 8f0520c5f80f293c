"""``python -m pipeline tag FILE_OR_FOLDER... [--model NAME | --run RUN_DIR]``: tag audio and print the top tags.

Without ``--run`` the files are tagged by a converted published model (`pipeline.pretrained`;
musicnn's MagnaTagATune model by default). A folder stands for every audio file under it, and
its files' probabilities are also written to a CSV.

This command is timed as a whole process (``python -m benchmarks tag``), so this module
imports only the standard library at the top, and tagging goes through ONNX Runtime
(`pipeline.scoring.tagger.OnnxTagger`), never torch, unless the run has no ONNX model or ``--torch``
asks for the checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import sys
from pathlib import Path
from typing import Any

from pipeline.pretrained.catalog import DEFAULT_MODEL, MODELS

log = logging.getLogger(__name__)

TAGGRAM_FORMATS: tuple[str, ...] = (".png", ".csv")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline tag",
        description="Tag audio files (mp3, wav, flac, ogg; any length, even shorter than the model's input) and "
                    "print each file's most probable tags. By default the tagger is musicnn's published "
                    f"MagnaTagATune model ({DEFAULT_MODEL}, converted from musicnn 0.1.0 at install or first use); "
                    "--model picks another published model, --run a run of your own. Uses the ONNX export, so "
                    "it starts fast and needs no GPU. A folder stands for every audio file under it, and their "
                    "probabilities are also written to a CSV. A file that cannot be decoded is reported and "
                    "skipped; the exit status is then 1.")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE_OR_FOLDER",
                   help="audio files, or folders of them (searched recursively)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, metavar="NAME",
                        help=f"a published model: {', '.join(MODELS)} (default {DEFAULT_MODEL}; MTT = "
                             "MagnaTagATune's top-50 tags, MSD = the Million Song Dataset's top-50 Last.fm tags; "
                             "'python -m pipeline pretrained list --tags' shows each vocabulary)")
    source.add_argument("--run", type=Path, default=None, metavar="RUN_DIR",
                        help="a run of your own whose score stage is complete")
    p.add_argument("--csv", type=Path, default=None, metavar="OUT.csv",
                   help="write every file's probabilities (one column per tag) to this CSV (default for a folder: "
                        "./<folder>.<model>.csv)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="tags printed per file (default 10)")
    p.add_argument("--taggram", type=Path, metavar="OUT",
                   help="also write each file's taggram (tag activations over time) to OUT.png (a heat map) or "
                        "OUT.csv (time_s and one column per tag); with several files, each file's name is "
                        "appended to OUT's stem")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for the model (default: ONNX Runtime's choice)")
    p.add_argument("--torch", action="store_true",
                   help="tag with the torch checkpoint instead of the ONNX model (slower start; for comparison)")
    return p


def taggram_path(out: Path, audio: Path, n_files: int) -> Path:
    """Where one file's taggram goes: ``out`` itself, or ``out``'s stem + the file's stem with several files."""
    return out if n_files == 1 else out.with_name(f"{out.stem}-{audio.stem}{out.suffix}")


def open_tagger(run_dir: Path, *, use_torch: bool = False, threads: int | None = None) -> Any:
    """The run's ONNX tagger, or its torch tagger when asked for or when the run has no ONNX model."""
    from pipeline.run.rundir import RunDir
    from pipeline.scoring.tagger import read_tagger_config, tagger_stage

    has_onnx = tagger_stage(run_dir) is not None
    if not has_onnx:
        RunDir(run_dir).require("score")  # a one-line error naming the command that completes it
    else:
        config = read_tagger_config(run_dir)
        has_onnx = bool(config.get("onnx"))
        if not has_onnx and not use_torch:
            log.warning("%s has no ONNX model (%s); tagging with the torch checkpoint", run_dir,
                        config.get("onnx_error") or "not exported")
    if use_torch or not has_onnx:
        from pipeline.scoring.inference import TorchTagger

        return TorchTagger(run_dir)
    from pipeline.scoring.tagger import OnnxTagger

    return OnnxTagger(run_dir, threads=threads)


def write_taggram_csv(path: Path, taggram: Any, tags: list[str], hop_s: float) -> None:
    """``time_s`` (each frame's start) and one column per tag, atomically."""
    from pipeline.io import write_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["time_s", *tags])
    for j, row in enumerate(taggram):
        writer.writerow([f"{j * hop_s:.3f}", *(f"{float(v):.4f}" for v in row)])
    write_text(path, buf.getvalue())


# Viridis at nine evenly spaced points: enough for a smooth map by linear interpolation.
_VIRIDIS = ((68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141), (39, 173, 129),
            (92, 200, 99), (170, 220, 50), (253, 231, 37))


def _colormap(values: Any) -> Any:
    """Values in [0, 1] [shape=(...)] -> uint8 RGB [shape=(..., 3)] on the viridis scale."""
    import numpy as np

    anchors = np.asarray(_VIRIDIS, dtype=np.float32)
    pos = np.clip(np.asarray(values, dtype=np.float32), 0, 1) * (len(anchors) - 1)
    lo = np.minimum(pos.astype(np.int64), len(anchors) - 2)
    frac = (pos - lo)[..., None]
    return (anchors[lo] * (1 - frac) + anchors[lo + 1] * frac).round().astype(np.uint8)


def write_taggram_png(path: Path, taggram: Any, tags: list[str], hop_s: float, *, title: str = "",
                      order: Any = None) -> None:
    """A heat map of the taggram: one row per tag (in ``order``, default as given), time to the right.

    Drawn with Pillow (no plotting library): tag names on the left, a time axis in seconds
    below, a colour scale from 0 to 1 on the right. Written atomically.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from pipeline.io import atomic_path

    gram = np.asarray(taggram, dtype=np.float32)  # (n_frames, n_tags)
    order = np.arange(gram.shape[1]) if order is None else np.asarray(order)
    n_frames, n_rows = gram.shape[0], len(order)
    font = ImageFont.load_default()
    row_h = 14
    label_w = 8 + max(int(font.getlength(tags[i])) for i in order)
    plot_w = int(np.clip(n_frames * 6, 240, 1200))
    top, bottom, right = 28, 34, 60
    width, height = label_w + plot_w + right, top + n_rows * row_h + bottom
    image = Image.new("RGB", (width, height), "white")
    heat = Image.fromarray(_colormap(gram[:, order].T))  # (n_rows, n_frames, 3)
    image.paste(heat.resize((plot_w, n_rows * row_h), Image.NEAREST), (label_w, top))
    draw = ImageDraw.Draw(image)
    draw.text((4, 6), title, fill="black", font=font)
    for r, i in enumerate(order):
        draw.text((4, top + r * row_h + 1), tags[i], fill="black", font=font)
    # time axis: about six ticks at a round number of seconds
    duration = n_frames * hop_s
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if duration / s <= 6), 1200)
    y_axis = top + n_rows * row_h
    t = 0.0
    while t <= duration + 1e-9:
        x = label_w + int(round(t / duration * (plot_w - 1)))
        draw.line([(x, y_axis), (x, y_axis + 4)], fill="black")
        draw.text((x - 6, y_axis + 6), f"{t:g}", fill="black", font=font)
        t += step
    draw.text((label_w + plot_w - 60, y_axis + 20), "time (s)", fill="black", font=font)
    # colour scale
    bar = Image.fromarray(_colormap(np.linspace(1, 0, n_rows * row_h)[:, None].repeat(10, axis=1)))
    image.paste(bar, (label_w + plot_w + 10, top))
    draw.text((label_w + plot_w + 24, top - 4), "1", fill="black", font=font)
    draw.text((label_w + plot_w + 24, y_axis - 10), "0", fill="black", font=font)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def resolve_tagger_dir(model: str | None, run: Path | None) -> tuple[Path, str]:
    """The folder to tag with and a name for it: ``--run``, or the converted published ``--model``."""
    if run is not None:
        return run, run.name
    from pipeline.pretrained.build import ensure_model, installed_model
    from pipeline.pretrained.catalog import get_pretrained

    entry = get_pretrained(model or DEFAULT_MODEL)
    folder = installed_model(entry.name)
    if folder is None:
        print(f"converting {entry.name} from musicnn 0.1.0 (first use; fetched with pip) ...", file=sys.stderr)
        folder = ensure_model(entry.name)
    return folder, entry.name


def expand_inputs(paths: list[Path]) -> tuple[list[tuple[Path, Path]], list[Path], list[str]]:
    """(file, the folder it was found in or the file itself) for each audio file, the folders given,
    and one error line per folder without audio (reported like a file that cannot be tagged)."""
    files: list[tuple[Path, Path]] = []
    folders, empty = [], []
    for path in paths:
        if path.is_dir():
            from pipeline.sources.folder import find_audio

            found = find_audio(path)
            if not found:
                empty.append(f"{path}: no audio files (mp3, wav, flac, ogg) in this folder")
            folders.append(path)
            files += [(path / rel, path) for rel in found]
        else:
            files.append((path, path))
    return files, folders, empty


def write_probabilities_csv(path: Path, rows: list[tuple[str, float, list[tuple[str, float]], Any]],
                            tags: list[str], top: int) -> None:
    """``path, seconds, top_tags`` (the ``top`` best, ``;``-separated) and one probability column per tag."""
    from pipeline.io import write_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "seconds", f"top_{top}_tags", *tags])
    for name, seconds, best, probs in rows:
        writer.writerow([name, f"{seconds:.2f}", ";".join(t for t, _ in best), *(f"{float(v):.4f}" for v in probs)])
    write_text(path, buf.getvalue())


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.errors import ParameterError, PipelineError

    if args.top < 1:
        raise ParameterError(f"--top must be >= 1, got {args.top}")
    if args.threads is not None and args.threads < 1:  # ONNX Runtime would take 0 or -1 as "its choice"
        raise ParameterError(f"--threads must be >= 1 (or left out), got {args.threads}")
    if args.taggram is not None and args.taggram.suffix.lower() not in TAGGRAM_FORMATS:
        raise ParameterError(f"--taggram must end in {' or '.join(TAGGRAM_FORMATS)}, got {args.taggram}")
    from pipeline.io import check_folder_path

    for option, out in (("--taggram", args.taggram), ("--csv", args.csv)):
        if out is not None:
            if out.is_dir():
                raise ParameterError(f"{option} names a file to write, but {out} is a folder")
            check_folder_path(out.parent, option)  # before any file is tagged
    files, folders, empty = expand_inputs(args.files)
    tagger_dir, model_name = resolve_tagger_dir(args.model, args.run)
    tagger = open_tagger(tagger_dir, use_torch=args.torch, threads=args.threads)
    if args.run is None:
        print(f"model: {model_name} ({MODELS[model_name].dataset}); {len(tagger.tags)} tags: {', '.join(tagger.tags)}")
    csv_path = args.csv
    if csv_path is None and folders:
        csv_path = Path.cwd() / f"{folders[0].resolve().name or 'audio'}.{model_name}.csv"
    rows: list[tuple[str, float, list[tuple[str, float]], Any]] = []
    for line in empty:
        print(f"error: {line}", file=sys.stderr)
    failed = len(empty)
    for path, base in files:
        try:
            features = tagger.compute_features(_load(tagger, path))
            probs, taggram = tagger.tag_features(features, taggram=args.taggram is not None)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        seconds = len(features) / tagger.features.frames_per_second
        best = tagger.top(probs, args.top)
        rows.append((path.relative_to(base).as_posix() if base != path else str(path), seconds, best, probs))
        print(f"{path} ({seconds:.1f} s)")
        width = max(len(t) for t, _ in best)
        for tag, p in best:
            print(f"  {tag:<{width}}  {p:.3f}")
        if args.taggram is not None and taggram is None:
            print("  taggram: none (a classical baseline has no time resolution)")
        elif args.taggram is not None:
            out = taggram_path(args.taggram, path, len(files))
            try:
                if out.suffix.lower() == ".csv":
                    write_taggram_csv(out, taggram, tagger.tags, tagger.plan.hop_s)
                else:
                    import numpy as np

                    write_taggram_png(out, taggram, tagger.tags, tagger.plan.hop_s, order=np.argsort(-probs),
                                      title=f"{path.name}: taggram, one column per {tagger.plan.hop_s:.2f} s")
            except OSError as exc:  # a full disk, no permission: reported like a file that cannot be tagged
                print(f"error: cannot write the taggram {out}: {exc.strerror or exc}", file=sys.stderr)
                failed += 1
                continue
            print(f"  taggram: {out}")
    if csv_path is not None and rows:
        try:
            write_probabilities_csv(csv_path, rows, tagger.tags, args.top)
            print(f"probabilities of {len(rows)} file(s): {csv_path}")
        except OSError as exc:
            print(f"error: cannot write {csv_path}: {exc.strerror or exc}", file=sys.stderr)
            failed += 1
    if failed:
        print(f"{failed} of {len(files) + len(empty)} file(s) could not be tagged", file=sys.stderr)
    return 1 if failed else 0


def _load(tagger: Any, path: Path) -> Any:
    from pipeline.features.audio import load_audio

    return load_audio(path, sample_rate=tagger.features.sample_rate)
