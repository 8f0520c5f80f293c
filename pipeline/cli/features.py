"""``python -m pipeline features CORPUS_DIR``: compute and cache a corpus's features."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from pipeline.features.extract import KINDS, FeatureConfig

    d = FeatureConfig()
    p = argparse.ArgumentParser(
        prog="python -m pipeline features",
        description="Decode every clip of a corpus (resampled to mono at --sample-rate), compute its features and "
                    "store them in a cache laid out for fast random access in training: one memory-mapped float16 "
                    "array plus an index, in <data root>/cache/<corpus folder name>-<hash of its path>/<key>/ (the data "
                    "root is $MUSICTAG_DATA, default data/; nothing is written into CORPUS_DIR), where the key is a "
                    "hash of the feature parameters (a change of parameters never reuses a stale cache). Empty, truncated, non-audio "
                    "and silent files are skipped and listed with their reason in failures.csv beside the cache. "
                    "Idempotent: a finished cache is reused at once, and a killed build resumes where it stopped.")
    p.add_argument("corpus_dir", type=Path, metavar="CORPUS_DIR",
                   help="a corpus folder: MagnaTagATune or the demo (annotations_final.csv), or a folder of audio")
    p.add_argument("--kind", default=d.kind, choices=KINDS,
                   help=f"log-mel spectrogram, MFCCs, or the raw waveform (default {d.kind})")
    p.add_argument("--sample-rate", type=int, default=d.sample_rate, metavar="SR",
                   help=f"audio is resampled to this rate in Hz (default {d.sample_rate})")
    p.add_argument("--n-fft", type=int, default=d.n_fft, metavar="N",
                   help=f"STFT window length in samples (default {d.n_fft})")
    p.add_argument("--hop-length", type=int, default=d.hop_length, metavar="N",
                   help=f"STFT hop in samples (default {d.hop_length}: "
                        f"{d.sample_rate / d.hop_length:g} frames a second at {d.sample_rate} Hz)")
    p.add_argument("--n-mels", type=int, default=d.n_mels, metavar="N",
                   help=f"mel bands (default {d.n_mels}, the FCN / musicnn input; 128 for shortchunk_res)")
    p.add_argument("--n-mfcc", type=int, default=d.n_mfcc, metavar="N",
                   help=f"MFCC coefficients kept with --kind mfcc (default {d.n_mfcc})")
    p.add_argument("--fmin", type=float, default=d.fmin, metavar="HZ",
                   help=f"lowest mel band edge in Hz (default {d.fmin:g})")
    p.add_argument("--fmax", type=float, default=d.fmax, metavar="HZ",
                   help="highest mel band edge in Hz (default: half the sample rate)")
    p.add_argument("--source", default="auto", choices=("auto", "mtt", "folder"),
                   help="corpus format; auto: MTT format when annotations_final.csv exists, else a folder of audio")
    p.add_argument("--workers", type=int, default=None, metavar="W",
                   help="parallel decoding processes (default: one per CPU core)")
    p.add_argument("--cache-root", type=Path, default=None, metavar="DIR",
                   help="keep caches in DIR/<corpus name>-<hash>/<key>/ instead of <data root>/cache/<corpus name>-<hash>/<key>/")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.errors import ParameterError
    from pipeline.features.cache import FAILURES, build_cache
    from pipeline.features.extract import FeatureConfig
    from pipeline.io import check_folder_path
    from pipeline.sources.loader import load_corpus

    if args.corpus_dir.exists() and not args.corpus_dir.is_dir():
        raise ParameterError(f"CORPUS_DIR must be a corpus folder, but {args.corpus_dir} is a file "
                             f"(to tag single files: python -m pipeline tag FILE --run RUN_DIR)")
    if args.cache_root is not None:
        check_folder_path(args.cache_root, "--cache-root")
    config = FeatureConfig(kind=args.kind, sample_rate=args.sample_rate, n_fft=args.n_fft,
                           hop_length=args.hop_length, n_mels=args.n_mels, n_mfcc=args.n_mfcc,
                           fmin=args.fmin, fmax=args.fmax)
    corpus = load_corpus(args.corpus_dir, source=args.source)
    cache = build_cache(corpus, config, cache_root=args.cache_root, workers=args.workers,
                        progress=not args.no_progress)
    hours = cache.total_frames / config.frames_per_second / 3600
    print(f"feature cache: {cache.directory}")
    print(f"  {config.kind}, {config.n_bins} bins, {config.frames_per_second:g} frames/s, "
          f"{cache.total_frames:,} frames ({hours:.2f} h of audio)")
    print(f"  {len(cache)} of {len(corpus)} clips cached, {len(cache.failures)} failed")
    if len(cache.failures):
        kinds = cache.failures["reason"].str.split(":").str[0].value_counts()
        print(f"  failures by reason: {', '.join(f'{k} {v}' for k, v in kinds.items())}")
    print(f"  report of failed files: {cache.directory / FAILURES}")
    return 0
