"""The synthesized demo corpus: MagnaTagATune's exact shape, with audio rendered from MIDI.

Each clip is planned from ``(seed, clip index)`` alone (`plan_clip`): a genre recipe
(`pipeline.sources.demo_recipes`), a tempo class, a dynamics class, a key, a chord
progression and a concrete arrangement. Its true tags are derived from what is actually
played. The plan is turned into MIDI (`clip_midi`), rendered through the General MIDI
SoundFont that ships with pretty_midi (``TimGM6mb.sf2``) with ``midirenderer``, mixed to mono,
resampled to 16 kHz and encoded as a 32 kbit/s mp3, like MagnaTagATune.

The corpus folder holds ``annotations_final.csv`` (each true tag dropped with probability
``label_dropout``, as human taggers miss tags), ``truth.csv`` (every true tag),
``clip_info_final.csv``, the mp3s in folders ``0``-``9`` and ``a``-``f`` (the folder decides
MTT's split: 0-b train, c valid, d-f test) and ``demo_corpus.json`` (build parameters and
statistics).

Examples
--------
>>> from pathlib import Path
>>> from pipeline.sources.demo import build_demo_corpus
>>> build_demo_corpus(Path("data/demo"), clips=40, seconds=4, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import multiprocessing as mp
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ParameterError, PipelineError
from pipeline.features.extract import FeatureConfig
from pipeline.io import read_json, write_bytes, write_json
from pipeline.sources import demo_recipes as R
from pipeline.sources.labels import FOLDER_SPLIT
from pipeline.sources.mtt_format import (
    ANNOTATIONS_FILE,
    CLIP_INFO_FILE,
    TRUTH_FILE,
    write_annotations,
    write_clip_info,
)
from pipeline.sources.mtt_tags import MTT_TAGS, TOP50_TAGS

log = logging.getLogger(__name__)

SAMPLE_RATE = FeatureConfig.sample_rate  # MagnaTagATune's rate, the features' default
MP3_KBPS = 32  # MagnaTagATune's bit rate
MANIFEST_FILE = "demo_corpus.json"
# Bump when recipes or rendering change, so that audio from an older generator is never reused.
GENERATOR_VERSION = 1

_RENDER_RATE = 48_000  # midirenderer's fixed output rate
_GAIN = 2.5  # one fixed gain for every clip (never per-clip normalisation: loud / quiet must stay audible)
_FOLDERS = "0123456789abcdef"
_SPLIT_SHARE = {"train": 12, "valid": 1, "test": 3}  # folders per split, out of 16
_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2}
_RECIPE_INDEX = {r.name: i for i, r in enumerate(R.RECIPES)}
_TAG_COLUMN = {t: i for i, t in enumerate(MTT_TAGS)}
# rng streams of one clip: plan, notes, annotator dropout
_PLAN, _NOTES, _DROPOUT = 0, 1, 2


# ----------------------------------------------------------------------------- planning

@dataclass(frozen=True)
class PartPlan:
    """One part of a clip's arrangement, as drawn from a recipe `Part`."""

    role: str
    program: int
    register: tuple[int, int]
    style: str
    level: float
    voice: str | None = None  # "female" / "male" for vocal parts


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render one clip and write its rows, drawn from ``(seed, index)``.

    Attributes
    ----------
    tags : the clip's true MTT tags (spelled as one annotator would), in MTT column order
    concepts : the tag concepts before spelling (e.g. "drums" for either "drum" or "drums")
    rel_path : audio path relative to the corpus root, e.g. ``c/artist-album-03-title_12-20-30.mp3``
    """

    seed: int
    index: int
    seconds: float
    recipe: str
    tempo_class: str
    bpm: float
    dynamics: str
    tonic: int
    scale: str
    progression: tuple[int, ...]
    meter: int
    drums: str | None
    parts: tuple[PartPlan, ...]
    concepts: tuple[str, ...]
    tags: tuple[str, ...]
    clip_id: str
    folder: str
    track_number: int
    title: str
    artist: str
    album: str
    segment_start: int
    segment_end: int
    rel_path: str

    @property
    def split(self) -> str:
        """MTT's split of this clip, from its folder."""
        return FOLDER_SPLIT[self.folder]

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * SAMPLE_RATE))


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """An independent generator per (seed, clip, stream): clips plan and render in any order."""
    return np.random.default_rng([seed, index, stream])


def _choice(rng: np.random.Generator, options: Sequence, weights: Sequence[float] | None = None):
    """One element of ``options`` (optionally weighted), keeping Python types."""
    if weights is None:
        return options[int(rng.integers(len(options)))]
    p = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


@functools.lru_cache(maxsize=4096)
def _folder_cycle(seed: int, cycle: int) -> str:
    """The 16 folders in a seeded order: every 16 consecutive clips fill each folder once."""
    rng = np.random.default_rng([seed, cycle, 0xF0])
    return "".join(_FOLDERS[i] for i in rng.permutation(16))


def _split_rank(seed: int, index: int) -> tuple[str, str, int]:
    """Clip ``index``'s folder, split, and how many clips of that split come before it."""
    cycle, pos = divmod(index, 16)
    order = _folder_cycle(seed, cycle)
    split = FOLDER_SPLIT[order[pos]]
    before = sum(FOLDER_SPLIT[f] == split for f in order[:pos])
    return order[pos], split, cycle * _SPLIT_SHARE[split] + before


@functools.lru_cache(maxsize=1024)
def _genre_block(seed: int, split: str, block: int) -> tuple[int, ...]:
    """Recipe indices of one block of a split's genre schedule.

    A block holds ``weight`` clips of each recipe, spread evenly: occurrence j of a recipe of
    weight w sits at key (j + u) / w with u uniform per recipe, so every recipe (w >= 2)
    appears in the first half of a block and even a small split (valid) gets every genre.
    """
    rng = np.random.default_rng([seed, block, _SPLIT_CODE[split], 0xB1])
    keys = []
    for i, recipe in enumerate(R.RECIPES):
        u = rng.random()
        keys += [((j + u) / recipe.weight, i) for j in range(recipe.weight)]
    return tuple(i for _, i in sorted(keys))


def _recipe_for(seed: int, index: int) -> tuple[str, R.Recipe]:
    """Folder and recipe of clip ``index``; stable when the corpus grows (prefix-stable)."""
    folder, split, rank = _split_rank(seed, index)
    block, pos = divmod(rank, R.block_size())
    return folder, R.RECIPES[_genre_block(seed, split, block)[pos]]


def _spell(concepts: Sequence[str], rng: np.random.Generator) -> set[str]:
    """One annotator's spelling of each concept (MTT synonym columns)."""
    tags = set()
    for concept in concepts:
        spellings = R.SPELLINGS.get(concept)
        if spellings is None:
            tags.add(concept)
        else:
            names, weights = zip(*spellings)
            tags.add(_choice(rng, names, weights))
    return tags


# Part inclusion by dynamics: loud arrangements are full, quiet ones sparse.
_PART_PROB_SCALE = {"loud": 1.5, "medium": 1.0, "soft": 0.7, "quiet": 0.45}

_WORDS_A = ("silver", "midnight", "golden", "hollow", "electric", "velvet", "distant", "broken", "crimson",
            "quiet", "northern", "paper", "glass", "wild", "lost", "secret", "burning", "winter", "summer",
            "blue", "amber", "iron", "lunar", "sacred", "endless", "faded")
_WORDS_B = ("river", "garden", "echo", "horizon", "dream", "machine", "lantern", "mirror", "storm", "harbour",
            "dance", "prayer", "shadow", "light", "road", "ocean", "circuit", "forest", "tide", "flame",
            "meadow", "signal", "temple", "waltz", "song", "sky")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _concepts(recipe: R.Recipe, parts: Sequence[PartPlan], drums: str | None, tempo_class: str,
              dynamics: str, source_parts: Sequence[R.Part]) -> list[str]:
    """The clip's true tag concepts, derived from what is played."""
    concepts: list[str] = list(recipe.tags)
    vocal = False
    for part, spec in zip(parts, source_parts):
        concepts += R.PROGRAM_TAGS.get(part.program, ())
        concepts += spec.tags
        if part.role == "vocal":
            vocal = True
            concepts += ["vocal", "singing", part.voice or "female"]
            if "opera" in recipe.tags:
                concepts.append(f"{part.voice} opera")
                if part.voice == "female":
                    concepts.append("soprano")
        elif part.role == "choir":
            vocal = True
            concepts += ["choir", "voices"]
    if not vocal:
        concepts.append("no vocals")
    concepts += R.DRUM_TAGS[drums]
    concepts += R.TEMPO_TAGS[tempo_class]
    concepts += R.DYNAMIC_TAGS[dynamics]
    if drums is None and len({p.program for p in parts}) == 1 and all(p.role in ("melody", "arp") for p in parts):
        concepts.append("solo")
        if "piano" in R.PROGRAM_TAGS.get(parts[0].program, ()):
            concepts.append("piano solo")
    return list(dict.fromkeys(concepts))


def plan_clip(seed: int, index: int, seconds: float, *, recipe: str | None = None, tempo: str | None = None,
              dynamics: str | None = None) -> ClipPlan:
    """Plan clip ``index`` of the corpus with ``seed``: arrangement, true tags, names and folder.

    ``recipe``, ``tempo`` (a tempo class) and ``dynamics`` (a dynamics class) override the draw,
    for tests and listening checks; the override need not be one the recipe allows.
    """
    rng = _rng(seed, index, _PLAN)
    folder, drawn = _recipe_for(seed, index)
    if recipe is not None:
        if recipe not in _RECIPE_INDEX:
            raise ParameterError(f"recipe must be one of {sorted(_RECIPE_INDEX)}, got {recipe!r}")
        drawn = R.RECIPES[_RECIPE_INDEX[recipe]]
    rec = drawn
    tempo_class = _choice(rng, *zip(*rec.tempo))
    dyn = _choice(rng, *zip(*rec.dynamics))
    if tempo is not None:
        if tempo not in R.TEMPO_CLASSES:
            raise ParameterError(f"tempo must be one of {list(R.TEMPO_CLASSES)}, got {tempo!r}")
        tempo_class = tempo
    if dynamics is not None:
        if dynamics not in R.DYNAMICS:
            raise ParameterError(f"dynamics must be one of {list(R.DYNAMICS)}, got {dynamics!r}")
        dyn = dynamics
    lo, hi = R.TEMPO_CLASSES[tempo_class]
    bpm = float(round(rng.uniform(lo, hi), 1))
    scale = _choice(rng, rec.scales)
    tonic = int(rng.integers(12))
    family = rec.harmony if rec.harmony != "auto" else ("minor" if "minor" in scale else "major")
    progression = _choice(rng, R.PROGRESSIONS[family])
    meter = _choice(rng, rec.meter)
    drums = _choice(rng, *zip(*rec.drums))

    parts: list[PartPlan] = []
    specs: list[R.Part] = []
    for entry in rec.parts:
        spec = _choice(rng, entry) if isinstance(entry, tuple) else entry
        keep = rng.random() < min(1.0, spec.p * _PART_PROB_SCALE[dyn]) if spec.p < 1 else True
        program = _choice(rng, spec.programs)
        style = _choice(rng, spec.styles)
        voice = _choice(rng, spec.voices) if spec.role == "vocal" else None
        if keep:
            register = R.VOICE_REGISTERS[voice] if voice else spec.register
            if spec.role == "vocal" and style == "opera" and voice == "female":
                register = (67, 86)  # soprano
            parts.append(PartPlan(spec.role, program, register, style, spec.level, voice))
            specs.append(spec)
    concepts = _concepts(rec, parts, drums, tempo_class, dyn, specs)
    tags = _spell(concepts, rng)

    artist = _choice(rng, rec.artists)
    album = f"{_choice(rng, _WORDS_A)} {_choice(rng, _WORDS_B)}"
    title = f"{_choice(rng, _WORDS_A)} {_choice(rng, _WORDS_B)} {index + 1}"
    track = int(rng.integers(1, 13))
    whole = max(1, int(round(seconds)))
    start = whole * int(rng.integers(0, 6))
    rel_path = f"{folder}/{artist}-{_slug(album)}-{track:02d}-{_slug(title)}-{start}-{start + whole}.mp3"
    return ClipPlan(
        seed=seed, index=index, seconds=float(seconds), recipe=rec.name, tempo_class=tempo_class, bpm=bpm,
        dynamics=dyn, tonic=tonic, scale=scale, progression=tuple(progression), meter=int(meter), drums=drums,
        parts=tuple(parts), concepts=tuple(concepts), tags=tuple(t for t in MTT_TAGS if t in tags),
        clip_id=str(index + 1), folder=folder, track_number=track, title=title.title(),
        artist=artist.replace("_", " ").title(), album=album.title(), segment_start=start,
        segment_end=start + whole, rel_path=rel_path,
    )


def plan_corpus(clips: int, seconds: float, seed: int) -> list[ClipPlan]:
    """Plans of clips ``0 .. clips-1`` (cheap: no audio)."""
    return [plan_clip(seed, i, seconds) for i in range(clips)]


def label_matrix(plans: Sequence[ClipPlan]) -> np.ndarray:
    """True tags as a 0/1 matrix over `MTT_TAGS`, shape (n_clips, 188), uint8."""
    labels = np.zeros((len(plans), len(MTT_TAGS)), dtype=np.uint8)
    for row, plan in enumerate(plans):
        labels[row, [_TAG_COLUMN[t] for t in plan.tags]] = 1
    return labels


def sample_annotations(plans: Sequence[ClipPlan], label_dropout: float) -> np.ndarray:
    """Simulated human annotations: each true tag is dropped with probability ``label_dropout``.

    Each (clip, tag) pair has its own uniform draw from the clip's dropout stream, so a higher
    dropout drops a superset of the tags a lower one drops. Returns shape (n_clips, 188), uint8.
    """
    truth = label_matrix(plans)
    draws = np.stack([_rng(p.seed, p.index, _DROPOUT).random(len(MTT_TAGS)) for p in plans]) if plans else \
        np.zeros((0, len(MTT_TAGS)))
    return (truth.astype(bool) & (draws >= label_dropout)).astype(np.uint8)


# ----------------------------------------------------------------------------- notes

@dataclass
class _Ctx:
    """What every part generator needs: harmony, time grid, dynamics and the notes rng."""

    plan: ClipPlan
    rng: np.random.Generator
    beat: float  # seconds per beat
    n_beats: float  # beats to fill (from the shifted start to past the clip's end)
    shift: float  # beats cut off before the clip starts (clips begin mid-song, like MTT's)
    chords: list[tuple[float, float, int]]  # (start beat, length in beats, scale degree of the root)
    scale: tuple[int, ...]
    vel: tuple[int, int]
    density: float

    def chord_at(self, beat: float) -> int:
        for start, length, degree in self.chords:
            if start <= beat < start + length:
                return degree
        return self.chords[-1][2]

    def velocity(self, accent: int = 0, scale: float = 1.0) -> int:
        v = self.rng.integers(self.vel[0], self.vel[1] + 1) * scale + accent
        return int(min(127, max(1, v)))

    def base(self, low: int) -> int:
        """MIDI pitch of the tonic at or just below ``low``."""
        return low - ((low - self.plan.tonic) % 12)

    def pitch(self, base: int, degree: int) -> int:
        octave, step = divmod(degree, len(self.scale))
        return base + 12 * octave + self.scale[step]

    def degree_range(self, low: int, high: int) -> tuple[int, int, int]:
        """(base, lowest degree, highest degree) whose pitches lie in [low, high]."""
        base = self.base(low)
        dmin = 0
        while self.pitch(base, dmin) < low:
            dmin += 1
        dmax = dmin
        while self.pitch(base, dmax + 1) <= high:
            dmax += 1
        return base, dmin, dmax

    def chord(self, degree: int, low: int, high: int, n: int = 3) -> list[int]:
        """Close-voiced chord on ``degree`` (stacked scale thirds), its root in the register's lower half."""
        base = self.base(low)
        root = self.pitch(base, degree % len(self.scale))
        while root < low:
            root += 12
        if root > (low + high) / 2 and root - 12 >= low - 2:
            root -= 12
        shift = root - self.pitch(base, degree % len(self.scale))
        tones = [self.pitch(base, degree % len(self.scale) + 2 * k) + shift for k in range(n)]
        return [t - 12 if t > high + 2 else t for t in tones]


Note = tuple[int, float, float, int]  # (pitch, start beat, length in beats, velocity)

_DURATIONS: dict[str, dict[str, tuple[tuple[float, float], ...]]] = {
    # style -> tempo class -> ((length in beats, weight), ...)
    "lyrical": {"slow": ((1, .4), (2, .3), (0.5, .2), (3, .1)), "medium": ((0.5, .35), (1, .4), (2, .15), (0.25, .1)),
                "fast": ((0.5, .5), (0.25, .25), (1, .25))},
    "ornamented": {"slow": ((0.5, .4), (0.25, .3), (1, .3)), "medium": ((0.25, .6), (0.5, .3), (1, .1)),
                   "fast": ((0.25, .7), (0.5, .3))},
    "counter": {"slow": ((2, .5), (1, .3), (4, .2)), "medium": ((2, .5), (1, .3), (4, .2)), "fast": ((1, .6), (2, .4))},
    "sparse": {"slow": ((2, .3), (3, .3), (4, .4)), "medium": ((2, .5), (4, .5)), "fast": ((2, .5), (4, .5))},
    "swing": {"slow": ((1, .4), (0.5, .4), (2, .2)), "medium": ((0.5, .6), (1, .25), (1.5, .15)),
              "fast": ((0.5, .7), (1, .3))},
    "raga": {"slow": ((1, .3), (2, .3), (0.5, .4)), "medium": ((0.5, .5), (0.25, .3), (1, .2)),
             "fast": ((0.25, .6), (0.5, .4))},
    "reel": {"slow": ((0.5, 1.0),), "medium": ((0.5, .8), (1, .2)), "fast": ((0.5, .85), (0.25, .15))},
    "pop": {"slow": ((1, .5), (2, .3), (0.5, .2)), "medium": ((0.5, .5), (1, .35), (1.5, .15)),
            "fast": ((0.5, .6), (1, .4))},
    "opera": {"slow": ((2, .4), (1, .3), (3, .3)), "medium": ((1, .4), (2, .4), (0.5, .2)), "fast": ((1, .5), (0.5, .5))},
    "chant": {"slow": ((1, .6), (2, .3), (0.5, .1)), "medium": ((1, .7), (0.5, .3)), "fast": ((1, .7), (0.5, .3))},
}
_STEPS: dict[str, tuple[tuple[int, float], ...]] = {
    # melodic motion in scale steps
    "default": ((-2, .12), (-1, .26), (0, .06), (1, .26), (2, .12), (-3, .05), (3, .05), (-4, .04), (4, .04)),
    "opera": ((-3, .12), (-2, .15), (-1, .2), (1, .2), (2, .15), (3, .1), (5, .04), (-5, .04)),
    "chant": ((-1, .35), (0, .2), (1, .35), (-2, .05), (2, .05)),
}
_REST_PROB = {"loud": 0.04, "medium": 0.08, "soft": 0.14, "quiet": 0.22}


def _line(ctx: _Ctx, part: PartPlan, style: str) -> list[Note]:
    """A melodic line: a random walk in the scale, anchored on chord tones, with phrase repeats."""
    rng = ctx.rng
    base, dmin, dmax = ctx.degree_range(*part.register)
    if style == "chant":
        dmax = min(dmax, dmin + 6)
    durations = _DURATIONS.get(style, _DURATIONS["lyrical"])[ctx.plan.tempo_class]
    lengths, weights = zip(*durations)
    steps, step_w = zip(*_STEPS.get(style, _STEPS["default"]))
    rest_p = _REST_PROB[ctx.plan.dynamics] + (0.35 if style == "sparse" else 0.0)
    phrase = 8.0 if ctx.plan.meter == 4 else 6.0  # beats per phrase (two bars)
    vocal = part.role == "vocal"
    notes: list[Note] = []
    degree = (dmin + dmax) // 2
    motif: list[tuple[float, float, int]] = []  # (offset in phrase, length, degree relative to chord root)
    b = 0.0
    while b < ctx.n_beats:
        root = ctx.chord_at(b)
        if motif and rng.random() < 0.5:  # repeat the last phrase over the current chord (songs repeat)
            for offset, length, rel in motif:
                d = int(np.clip(root + rel, dmin, dmax))
                notes.append((ctx.pitch(base, d), b + offset, length * 0.95, ctx.velocity(6 if offset == 0 else 0)))
            b += phrase
            continue
        motif = []
        start = b
        while b < start + phrase:
            length = float(_choice(rng, lengths, weights))
            if rng.random() < rest_p or (vocal and b - start > phrase - 2 and rng.random() < 0.6):
                b += length  # rest (a singer breathes at the end of a phrase)
                continue
            if (b % ctx.plan.meter) == 0 and rng.random() < 0.6:  # chord tone on the downbeat
                n = len(ctx.scale)
                target = ctx.chord_at(b) + _choice(rng, (0, 2, 4)) + n * round((degree - ctx.chord_at(b)) / n)
                degree = int(np.clip(target, dmin, dmax))
            else:
                degree = int(np.clip(degree + _choice(rng, steps, step_w), dmin, dmax))
            accent = 8 if b % ctx.plan.meter == 0 else 0
            legato = 0.98 if vocal or style in ("lyrical", "opera") else 0.85
            notes.append((ctx.pitch(base, degree), b, length * legato, ctx.velocity(accent)))
            motif.append((b - start, length * legato, degree - root))
            b += length
        b = start + phrase
    return notes


def _riff(ctx: _Ctx, part: PartPlan, style: str) -> list[Note]:
    """Guitar power chords and chugs, or a synth stab / sequence, repeated bar after bar."""
    rng = ctx.rng
    low, high = part.register
    base = ctx.base(low)
    bar = ctx.plan.meter
    notes: list[Note] = []
    # one rhythmic cell per clip, reused every bar: riffs repeat
    if style == "power4":
        cell = [(i, 0.9) for i in range(bar)]
    elif style == "power8":
        cell = [(i * 0.5, 0.45) for i in range(bar * 2)]
    elif style == "gallop":
        cell = [(i + o, length) for i in range(bar) for o, length in ((0, 0.45), (0.5, 0.22), (0.75, 0.22))]
    elif style == "chug16":
        mask = rng.random(bar * 4) < 0.8
        mask[0] = True
        cell = [(i * 0.25, 0.22) for i in range(bar * 4) if mask[i]]
    elif style == "stab":
        mask = rng.random(bar * 4) < 0.3
        mask[0] = True
        cell = [(i * 0.25, 0.2) for i in range(bar * 4) if mask[i]]
    else:  # "seq" and melodic riffs: a 16th-note sequence over chord tones
        cell = [(i * 0.25, 0.22) for i in range(bar * 4) if rng.random() < 0.75 or i == 0]
    seq_degrees = rng.integers(0, 5, size=len(cell))
    b = 0.0
    while b < ctx.n_beats:
        root_degree = ctx.chord_at(b)
        root = ctx.pitch(base, root_degree % len(ctx.scale))
        while root < low:
            root += 12
        for k, (offset, length) in enumerate(cell):
            accent = 10 if offset % 1 == 0 else 0
            if style in ("power4", "power8", "gallop", "chug16"):
                chord = [root, root + 7] + ([root + 12] if style in ("power4", "power8") else [])
                scale_v = 1.0 if offset % 1 == 0 or style != "power8" else 0.8  # palm-muted offbeats
                for p in chord:
                    notes.append((p, b + offset, length, ctx.velocity(accent, scale_v)))
            elif style == "stab":
                for p in ctx.chord(root_degree, low, high):
                    notes.append((p, b + offset, length, ctx.velocity(accent)))
            else:
                p = ctx.pitch(base, root_degree + int(seq_degrees[k]))
                while p > high:
                    p -= 12
                notes.append((p, b + offset, length, ctx.velocity(accent)))
        b += bar
    return notes


def _chords(ctx: _Ctx, part: PartPlan, style: str) -> list[Note]:
    """Block chords: held, pulsed, stabbed, strummed (guitar) or comped (jazz sevenths)."""
    rng = ctx.rng
    low, high = part.register
    bar = ctx.plan.meter
    notes: list[Note] = []
    stab_cell = [i * 0.25 for i in range(bar * 4) if rng.random() < 0.28 or i == 2]
    strum_cell = [0.0, 1.0, 1.5, 2.5, 3.0, 3.5] if bar == 4 else [0.0, 1.0, 1.5, 2.0, 2.5]
    for start, length, degree in ctx.chords:
        n = 4 if style == "comp" else 3
        chord = ctx.chord(degree, low, high, n)
        b = start
        while b < start + length:
            if style == "hold":  # one attack per chord: held voices are what costs render time
                for p in chord:
                    notes.append((p, b, length * 0.98, ctx.velocity(4)))
                b += length
            elif style == "pulse":
                for p in chord:
                    notes.append((p, b, 0.9, ctx.velocity(8 if b % bar == 0 else 0)))
                b += 1
            elif style == "stab":
                for offset in stab_cell:
                    for p in chord:
                        notes.append((p, b + offset, 0.2, ctx.velocity(6 if offset % 1 == 0 else 0)))
                b += bar
            elif style == "strum":
                for offset in strum_cell:
                    down = offset % 1 == 0
                    order = chord + [chord[0] + 12] if down else [chord[0] + 12, *chord[::-1]]
                    for k, p in enumerate(order):  # strings sound one after another
                        notes.append((p, b + offset + k * 0.03, 0.48, ctx.velocity(8 if down else 0, 1.0 if down else 0.8)))
                b += bar
            else:  # comp: syncopated jazz voicings
                for offset, dur in ((0, 1.2), (1.5, 0.5)) if rng.random() < 0.5 else ((0.5, 0.4), (2.5, 0.9)):
                    for p in chord:
                        notes.append((p, b + offset, dur, ctx.velocity(0, 0.85)))
                b += bar
    return notes


def _arp(ctx: _Ctx, part: PartPlan, style: str) -> list[Note]:
    """Broken chords: rising, rising-falling, Alberti bass, block (left hand) or banjo rolls."""
    low, high = part.register
    step = 0.25 if style in ("up16", "roll") else 0.5  # eighths: the tempo alone sets how fast it sounds
    notes: list[Note] = []
    for start, length, degree in ctx.chords:
        tones = ctx.chord(degree, low, min(high, low + 14))
        span = sorted(set(tones + [t + 12 for t in tones if t + 12 <= high]))
        if style == "alberti":
            pattern = [tones[0], tones[2], tones[1], tones[2]]
        elif style == "updown":
            pattern = span + span[-2:0:-1]
        elif style == "roll":
            pattern = [tones[0], tones[1], span[-1], tones[2], tones[1], span[-1]]
        else:
            pattern = span
        if style == "block":
            b = start
            while b < start + length:
                for p in tones:
                    notes.append((p, b, 1.9, ctx.velocity(6)))
                b += 2
            continue
        k = 0
        b = start
        while b < start + length:
            notes.append((pattern[k % len(pattern)], b, step * (1.8 if style != "roll" else 0.9),
                          ctx.velocity(8 if b % ctx.plan.meter == 0 else 0, 0.9)))
            k += 1
            b += step
    return notes


def _bass(ctx: _Ctx, part: PartPlan, style: str) -> list[Note]:
    """Bass lines: roots, pizzicato, eighths / sixteenths, offbeats, octaves, walking, root-fifth."""
    low, high = part.register
    base = ctx.base(low)
    notes: list[Note] = []

    def root_of(degree: int, fifth: bool = False) -> int:
        p = ctx.pitch(base, degree % len(ctx.scale) + (4 if fifth else 0))
        while p > high:
            p -= 12
        while p < low:
            p += 12
        return p

    for i, (start, length, degree) in enumerate(ctx.chords):
        root = root_of(degree)
        b = start
        end = start + length
        if style == "walking":
            nxt = root_of(ctx.chords[i + 1][2]) if i + 1 < len(ctx.chords) else root
            n = int(length)
            for k in range(n):
                if k == 0:
                    p = root
                elif k == n - 1:
                    p = nxt + (1 if ctx.rng.random() < 0.5 else -1)  # chromatic approach
                else:
                    p = ctx.pitch(base, degree % len(ctx.scale) + k)
                    p = p - 12 if p > high else p
                notes.append((p, start + k, 0.9, ctx.velocity(4 if k == 0 else 0)))
            continue
        grid = {"root": 2.0, "pizz": 1.0, "pulse8": 0.5, "pulse16": 0.25, "offbeat": 1.0, "octave": 0.5,
                "alternate": 1.0}.get(style, 1.0)
        k = 0
        while b < end:
            if style == "offbeat":
                notes.append((root, b + 0.5, 0.35, ctx.velocity(4)))
            elif style == "octave":
                notes.append((root + (12 if k % 2 else 0), b, 0.4, ctx.velocity(4 if k % 2 == 0 else 0)))
            elif style == "alternate":
                if k % 2 == 0:
                    notes.append((root_of(degree, fifth=(k // 2) % 2 == 1), b, 0.8, ctx.velocity(6)))
            elif style == "root":
                notes.append((root if k % 2 == 0 else root_of(degree, True), b, 1.9, ctx.velocity(6)))
            elif style == "pizz":
                notes.append((root if k % 2 == 0 else root_of(degree, True), b, 0.35, ctx.velocity(4)))
            else:
                notes.append((root, b, grid * 0.9, ctx.velocity(8 if b % 1 == 0 else 0)))
            k += 1
            b += grid
    return notes


def _drone(ctx: _Ctx, part: PartPlan, style: str) -> list[Note]:
    """A held tonic and fifth, or a tanpura's plucked Pa-Sa-Sa-Sa cycle."""
    low, high = part.register
    base = ctx.base(low)
    tonic = base if base >= low else base + 12
    fifth = tonic + 7 if tonic + 7 <= high else tonic - 5
    notes: list[Note] = []
    if style == "tanpura":
        b = 0.0
        for k in range(int(ctx.n_beats) + 1):
            p = (fifth, tonic + 12, tonic + 12, tonic)[k % 4]
            notes.append((p, b, 2.5, ctx.velocity(0, 0.8)))
            b += 1.0 if ctx.plan.tempo_class != "fast" else 2.0
        return notes
    span = 4.0 * ctx.plan.meter
    b = 0.0
    while b < ctx.n_beats:
        for p in (tonic, fifth):
            notes.append((p, b, span, ctx.velocity(0, 0.85)))
        b += span
    return notes


def _choir(ctx: _Ctx, part: PartPlan, style: str) -> list[Note]:
    """Four-part (SATB) chords with simple voice leading."""
    low, high = part.register
    width = (high - low) / 4
    ranges = [(int(low + k * width), int(low + (k + 1.6) * width)) for k in range(4)]
    previous = [int((a + b) / 2) for a, b in ranges]
    notes: list[Note] = []
    for start, length, degree in ctx.chords:
        pcs = {ctx.pitch(0, degree + 2 * k) % 12 for k in range(3)}
        voicing = []
        for (a, b), prev in zip(ranges, previous):
            candidates = [p for p in range(a, b + 1) if p % 12 in pcs] or [prev]
            voicing.append(min(candidates, key=lambda p, prev=prev: abs(p - prev)))
        previous = voicing
        step = length if style == "hold" else 2.0
        b = start
        while b < start + length:
            for p in voicing:
                notes.append((p, b, min(step, start + length - b) * 0.97, ctx.velocity(4)))
            b += step
    return notes


def _fx(ctx: _Ctx, part: PartPlan, style: str) -> list[Note]:
    """Sound effects: sparse events (bells, birds), slow swells (sea), or atonal glitches."""
    rng = ctx.rng
    low, high = part.register
    notes: list[Note] = []
    if style == "glitch":
        b = 0.0
        while b < ctx.n_beats:
            length = float(_choice(rng, (0.25, 0.5, 0.75, 1.5, 3.0)))
            if rng.random() < 0.7:
                notes.append((int(rng.integers(low, high + 1)), b + rng.uniform(0, 0.2), length,
                              ctx.velocity(int(rng.integers(-15, 15)))))
            b += float(_choice(rng, (0.25, 0.5, 0.75, 1.0, 1.5)))
        return notes
    base, dmin, dmax = ctx.degree_range(low, high)
    b = float(rng.uniform(0, 2))
    while b < ctx.n_beats:
        length = float(rng.uniform(3, 6)) if style == "swell" else float(rng.uniform(1, 3))
        notes.append((ctx.pitch(base, int(rng.integers(dmin, dmax + 1))), b, length, ctx.velocity(0, 0.9)))
        b += length if style == "swell" else float(rng.uniform(1.5, 4))
    return notes


_GENERATORS = {"melody": _line, "vocal": _line, "riff": _riff, "chords": _chords, "arp": _arp, "bass": _bass,
               "drone": _drone, "choir": _choir, "fx": _fx}

# 16-step (one 4/4 bar) drum patterns: GM drum note -> steps ("x" hit, "o" ghost).
_DRUM_PATTERNS: dict[str, tuple[dict[int, str], ...]] = {
    "rock": ({36: "x.......x.x.....", 38: "....x.......x...", 42: "x.x.x.x.x.x.x.x."},
             {36: "x.....x.x.......", 38: "....x.......x..o", 42: "x.x.x.x.x.x.x.x."}),
    "metal": ({36: "xxxxxxxxxxxxxxxx", 38: "....x.......x...", 51: "x.x.x.x.x.x.x.x."},
              {36: "x.xxx.xxx.xxx.xx", 38: "....x.......x...", 42: "x.x.x.x.x.x.x.x."}),
    "pop": ({36: "x.....x.x.......", 38: "....x.......x...", 42: "x.x.x.x.x.x.x.x.", 54: "....x.......x..."},
            {36: "x.......x.......", 38: "....x.......x...", 42: "x.x.x.x.x.x.x.x."}),
    "country": ({36: "x.......x.......", 38: "oooxoooooooxoooo", 42: "x.x.x.x.x.x.x.x."},),
    "four_floor": ({36: "x...x...x...x...", 39: "....x.......x...", 42: "..x...x...x...x."},
                   {36: "x...x...x...x...", 39: "....x.......x...", 46: "..x...x...x...x.", 42: "x.x.x.x.x.x.x.x."}),
    "house": ({36: "x...x...x...x...", 39: "....x.......x...", 46: "..x...x...x...x.", 42: "oooooooooooooooo"},),
    "trance": ({36: "x...x...x...x...", 39: "....x.......x...", 46: "..x...x...x...x.", 42: "x.x.x.x.x.x.x.x."},),
    "hiphop": ({36: "x......x..x.....", 38: "....x.......x...", 42: "x.x.x.x.x.x.x.x."},
               {36: "x.....x...x..x..", 38: "....x.......x...", 42: "xxx.xxx.xxx.xxx."}),
}
# Tabla theka of teental (16 beats): bols as GM bongo / conga notes.
_TABLA_BOLS = {"dha": (64, 60), "dhin": (64, 63), "tin": (62,), "ta": (60,), "na": (61,)}
_TEENTAL = ("dha", "dhin", "dhin", "dha", "dha", "dhin", "dhin", "dha",
            "dha", "tin", "tin", "ta", "ta", "dhin", "dhin", "dha")
_CYMBALS = {42, 46, 51, 54}


def _drums(ctx: _Ctx, style: str) -> list[Note]:
    """The drum track of a style, with crashes, fills and ghost notes; or tabla / jazz ride."""
    rng = ctx.rng
    notes: list[Note] = []
    n_bars = int(math.ceil(ctx.n_beats / 4))
    if style == "tabla":
        per_beat = 1.0 if ctx.plan.tempo_class == "slow" else 0.5  # slow alap-like cycles breathe more
        b, k = 0.0, 0
        while b < ctx.n_beats:
            for p in _TABLA_BOLS[_TEENTAL[k % 16]]:
                notes.append((p, b, 0.2, ctx.velocity(8 if k % 4 == 0 else 0)))
            if rng.random() < ctx.density:
                notes.append((_TABLA_BOLS["na"][0], b + per_beat / 2 if per_beat == 1 else b + 0.25, 0.15,
                              ctx.velocity(0, 0.6)))
            b += per_beat
            k += 1
        return notes
    if style == "jazz":
        for bar in range(n_bars):
            b0 = bar * 4.0
            for beat in range(4):
                notes.append((51, b0 + beat, 0.5, ctx.velocity(4, 0.8)))
                if beat in (1, 3):
                    notes.append((51, b0 + beat + 0.5, 0.3, ctx.velocity(0, 0.6)))  # swung by the swing map
                    notes.append((44, b0 + beat, 0.2, ctx.velocity(0, 0.7)))
                notes.append((36, b0 + beat, 0.2, ctx.velocity(0, 0.4)))  # feathered kick
                if rng.random() < 0.2:
                    notes.append((38, b0 + beat + 0.5, 0.2, ctx.velocity(0, 0.5)))
        return notes
    pattern = _choice(rng, _DRUM_PATTERNS[style])
    for bar in range(n_bars):
        b0 = bar * 4.0
        fill = bar % 4 == 3 and style in ("rock", "metal", "pop") and rng.random() < 0.7
        for drum, steps in pattern.items():
            for s, ch in enumerate(steps):
                if ch == "." or (fill and s >= 12):
                    continue
                scale = (0.75 if drum in _CYMBALS else 1.0) * (0.45 if ch == "o" else 1.0)
                notes.append((drum, b0 + s * 0.25, 0.2, ctx.velocity(6 if s % 4 == 0 else 0, scale)))
        if fill:
            for s in range(12, 16):
                notes.append((_choice(rng, (38, 45, 47, 48, 50)), b0 + s * 0.25, 0.2, ctx.velocity(8)))
        if bar % 4 == 0 and style in ("rock", "metal", "pop", "trance"):
            notes.append((49, b0, 1.0, ctx.velocity(6)))
    return notes


def _harmony(plan: ClipPlan, beat: float, n_beats: float) -> list[tuple[float, float, int]]:
    """The chord of each harmonic step: about 2.5 s per chord, whole bars."""
    bar = plan.meter
    bars_per_chord = max(1, round(2.5 / (bar * beat)))
    length = float(bar * bars_per_chord)
    chords = []
    b, k = 0.0, 0
    while b < n_beats:
        chords.append((b, length, plan.progression[k % len(plan.progression)]))
        b += length
        k += 1
    return chords


def _bends(part: PartPlan, notes: list[tuple[float, float]], rng: np.random.Generator, style: str):
    """Pitch-bend events: vibrato for voices and bowed melodies, slides (meend) for raga, wobble for glitch."""
    import pretty_midi

    depth = {"opera": 0.55, "pop": 0.2, "chant": 0.0, "lyrical": 0.12, "raga": 0.1}.get(style, 0.0)
    if part.role == "fx" and style == "glitch":
        return [pretty_midi.PitchBend(int(rng.integers(-8191, 8191)), s + (e - s) * rng.random()) for s, e in notes] + \
            [pretty_midi.PitchBend(0, s) for s, _ in notes]
    if part.program not in (40, 41, 42, 52, 53, 104, 110, 111) or (depth == 0 and style != "raga"):
        return []
    bends = []
    unit = 8191 / 2.0  # default bend range: +-2 semitones
    for start, end in notes:
        bends.append(pretty_midi.PitchBend(0, start))
        if style == "raga" and end - start > 0.2 and rng.random() < 0.4:  # meend: slide into the note
            for k in range(6):
                bends.append(pretty_midi.PitchBend(int(-unit * (1 - k / 5)), start + 0.02 * k))
        t = start + 0.18
        while depth and t < end - 0.05:
            value = depth * unit * math.sin(2 * math.pi * 5.6 * (t - start))
            bends.append(pretty_midi.PitchBend(int(value), t))
            t += 0.04
    return bends


def clip_midi(plan: ClipPlan):
    """The clip's score as a `pretty_midi.PrettyMIDI` (deterministic from the plan)."""
    import pretty_midi

    rng = _rng(plan.seed, plan.index, _NOTES)
    beat = 60.0 / plan.bpm
    shift = float(rng.uniform(0, plan.meter))
    n_beats = plan.seconds / beat + shift + 1
    lo, hi, volume, density = R.DYNAMICS[plan.dynamics]
    recipe = R.RECIPES[_RECIPE_INDEX[plan.recipe]]
    ctx = _Ctx(plan=plan, rng=rng, beat=beat, n_beats=n_beats, shift=shift,
               chords=_harmony(plan, beat, n_beats), scale=R.SCALES[plan.scale], vel=(lo, hi), density=density)
    midi = pretty_midi.PrettyMIDI(initial_tempo=plan.bpm)
    end_time = plan.seconds + 0.05

    def place(notes: list[Note], instrument: pretty_midi.Instrument, humanize: float) -> list[tuple[float, float]]:
        spans = []
        for pitch, start_b, length_b, velocity in notes:
            if recipe.swing and (start_b % 1) == 0.5:
                start_b += 1 / 6  # swung eighths: the offbeat falls on the last triplet
            start = (start_b - shift) * beat + (rng.normal(0, humanize) if humanize else 0.0)
            end = start + length_b * beat
            if end <= 0.0 or start >= plan.seconds:
                continue
            start, end = max(start, 0.0), min(end, end_time)
            if end - start < 0.02:
                continue
            instrument.notes.append(pretty_midi.Note(velocity=int(velocity), pitch=int(np.clip(pitch, 0, 127)),
                                                     start=start, end=end))
            spans.append((start, end))
        return spans

    jitter = 0.006 if recipe.humanize else 0.0
    for part in plan.parts:
        notes = _GENERATORS[part.role](ctx, part, part.style or part.role)
        instrument = pretty_midi.Instrument(program=part.program, name=part.role)
        spans = place(notes, instrument, jitter)
        instrument.pitch_bends = _bends(part, spans, rng, part.style)
        _controls(instrument, part.level * volume, recipe.reverb)
        midi.instruments.append(instrument)
    if plan.drums is not None:
        kit = pretty_midi.Instrument(program=R.DRUM_KITS[plan.drums], is_drum=True, name="drums")
        place(_drums(ctx, plan.drums), kit, jitter)
        _controls(kit, 0.85 * volume, recipe.reverb // 2)
        midi.instruments.append(kit)
    # a last event at the clip's end, so the renderer always renders the full duration
    midi.instruments[0].control_changes.append(
        pretty_midi.ControlChange(7, midi.instruments[0].control_changes[0].value, end_time))
    return midi


def _controls(instrument, volume: float, reverb: int) -> None:
    import pretty_midi

    instrument.control_changes += [
        pretty_midi.ControlChange(7, int(np.clip(round(127 * volume), 1, 127)), 0.0),  # channel volume
        pretty_midi.ControlChange(91, int(np.clip(reverb, 0, 127)), 0.0),  # reverb send
    ]


# ----------------------------------------------------------------------------- audio

@functools.lru_cache(maxsize=1)
def _soundfont() -> bytes:
    """The General MIDI SoundFont shipped with pretty_midi (read once per process)."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise PipelineError(f"SoundFont not found: {path} (reinstall pretty_midi: pip install pretty_midi)")
    return path.read_bytes()


def _wav_to_mono(wav: bytes) -> np.ndarray:
    """Mono float32 from midirenderer's WAV bytes (16-bit PCM stereo at 48 kHz, parsed in place)."""
    import struct

    if wav[:4] == b"RIFF" and wav[8:12] == b"WAVE":
        pos, fmt = 12, None
        while pos + 8 <= len(wav):
            chunk, size = wav[pos:pos + 4], struct.unpack("<I", wav[pos + 4:pos + 8])[0]
            if chunk == b"fmt ":
                fmt = struct.unpack("<HHIIHH", wav[pos + 8:pos + 24])
            elif chunk == b"data" and fmt is not None and fmt[0] == 1 and fmt[5] == 16:
                assert fmt[2] == _RENDER_RATE, fmt
                frames = np.frombuffer(wav, dtype="<i2", count=size // 2, offset=pos + 8).reshape(-1, fmt[1])
                mono = frames[:, 0].astype(np.float32)  # column sums: 15x faster than mean(axis=1)
                for channel in range(1, fmt[1]):
                    mono += frames[:, channel]
                return mono * np.float32(1 / (32768.0 * fmt[1]))
            pos += 8 + size + (size & 1)
    import soundfile as sf  # any other layout: let libsndfile read it

    stereo, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    assert rate == _RENDER_RATE, rate
    return stereo.mean(axis=1)


def render_clip(plan: ClipPlan) -> np.ndarray:
    """Render the clip to audio.

    Returns
    -------
    np.ndarray [shape=(plan.n_samples,), dtype=float32]  mono at `SAMPLE_RATE`, in [-1, 1]
    """
    import midirenderer
    from scipy.signal import resample_poly

    buffer = io.BytesIO()
    clip_midi(plan).write(buffer)
    mono = _wav_to_mono(midirenderer.render_wave_from(_soundfont(), buffer.getvalue()))
    audio = resample_poly(mono, SAMPLE_RATE, _RENDER_RATE).astype(np.float32)
    gain = _GAIN * 10 ** (R.RECIPES[_RECIPE_INDEX[plan.recipe]].gain_db / 20)
    audio = np.tanh(gain * audio)  # fixed gain per genre, soft limit: loud and quiet clips stay so
    out = np.zeros(plan.n_samples, dtype=np.float32)
    n = min(len(audio), plan.n_samples)
    out[:n] = audio[:n]
    return out


def encode_mp3(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, kbps: int = MP3_KBPS) -> bytes:
    """Encode mono float audio in [-1, 1] as a constant-bit-rate mp3 (MagnaTagATune's 32 kbit/s)."""
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(1)
    encoder.set_quality(7)  # LAME's fastest good setting; at 32 kbit/s mono the quality difference is nil
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return bytes(encoder.encode(pcm) + encoder.flush())


def _complete(manifest: Path, parameters: dict, files: list[Path]) -> bool:
    """Whether ``manifest`` records a finished build with ``parameters`` whose files are all still there."""
    if not manifest.is_file():
        return False
    try:
        record = read_json(manifest)
    except ValueError:
        return False
    return (record.get("status") == "complete" and record.get("parameters") == parameters
            and all(p.is_file() and p.stat().st_size > 0 for p in files))


def _mp3_ok(path: Path, n_samples: int) -> bool:
    """Whether ``path`` decodes to about ``n_samples`` samples at `SAMPLE_RATE` (mono)."""
    import soundfile as sf

    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError):  # soundfile's LibsndfileError is a RuntimeError
        return False
    return rate == SAMPLE_RATE and audio.shape[1] == 1 and abs(len(audio) - n_samples) < 0.02 * n_samples + 2048


def _render_job(job: tuple[int, int, float, str, bool]) -> tuple[int, bool]:
    """Worker: render clip ``index`` to ``path`` unless a valid mp3 is already there.

    Returns ``(index, rendered)``.
    """
    seed, index, seconds, path_str, force = job
    path = Path(path_str)
    plan = plan_clip(seed, index, seconds)
    if not force and path.is_file() and _mp3_ok(path, plan.n_samples):
        return index, False
    write_bytes(path, encode_mp3(render_clip(plan)))
    return index, True


def _preload() -> None:
    """Import the rendering stack and read the SoundFont once, before forking workers
    (otherwise every worker pays about a second of imports on its first clip)."""
    import lameenc  # noqa: F401
    import midirenderer  # noqa: F401
    import pretty_midi  # noqa: F401
    import scipy.signal  # noqa: F401
    import soundfile  # noqa: F401

    _soundfont()


def _run_jobs(jobs: list[tuple[int, int, float, str, bool]], workers: int, progress: bool) -> int:
    """Render in ``workers`` processes with a progress bar; returns the number rendered."""
    from tqdm import tqdm

    _preload()
    rendered = 0
    with contextlib.ExitStack() as stack:
        if workers <= 1 or len(jobs) <= 1:
            results: Iterator[tuple[int, bool]] = map(_render_job, jobs)
        else:
            # fork starts workers in milliseconds on Linux; macOS and Windows only spawn safely. The pool is
            # made before the progress bar, whose monitor thread must not be forked.
            context = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            pool = stack.enter_context(context.Pool(workers))
            results = pool.imap_unordered(_render_job, jobs, chunksize=4)
        bar = stack.enter_context(tqdm(total=len(jobs), desc="demo corpus", unit="clip", disable=not progress,
                                       dynamic_ncols=True))
        for _, did in results:
            rendered += did
            bar.update()
    return rendered


# ----------------------------------------------------------------------------- corpus

def _cpu_count() -> int:
    """CPUs this process may use (respects affinity masks, e.g. in containers and under taskset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _validate(clips: int, seconds: float, seed: int, label_dropout: float, workers: int | None) -> None:
    if isinstance(clips, bool) or not isinstance(clips, (int, np.integer)) or clips < 1:
        raise ParameterError(f"clips must be a positive integer, got {clips!r}")
    if not isinstance(seconds, (int, float)) or not 1.0 <= float(seconds) <= 600.0:
        raise ParameterError(f"seconds must be between 1 and 600, got {seconds!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(label_dropout, (int, float)) or not 0.0 <= float(label_dropout) < 1.0:
        raise ParameterError(f"label_dropout must be in [0, 1), got {label_dropout!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise ParameterError(f"workers must be a positive integer or None, got {workers!r}")


def _check_existing(out: Path, seed: int, seconds: float, force: bool) -> None:
    """Refuse to mix audio from different build parameters in one folder."""
    manifest = out / MANIFEST_FILE
    if not manifest.is_file():
        if (out / ANNOTATIONS_FILE).is_file() and not force:
            raise ParameterError(f"out folder {out} holds an {ANNOTATIONS_FILE} but no {MANIFEST_FILE}: "
                                 "it is not a demo corpus; choose an empty folder")
        return
    try:
        old = read_json(manifest)["parameters"]
    except (ValueError, KeyError, OSError) as exc:
        raise ParameterError(f"{manifest}: unreadable demo manifest ({exc}); delete it or the folder") from exc
    if force:
        return
    for key, value in (("seed", seed), ("seconds", float(seconds)), ("generator_version", GENERATOR_VERSION)):
        if old.get(key) != value:
            raise ParameterError(
                f"out folder {out} holds a demo corpus built with {key}={old.get(key)!r}, not {value!r}; "
                "choose another folder, or pass force=True (--force) to re-render every clip")


def _write_if_changed(path: Path, write) -> bool:
    """Write through ``write(staged_path)`` (an atomic writer), then move it onto ``path`` only when the
    bytes differ, so a rerun leaves unchanged files (and their modification times) alone."""
    staged = path.with_name(f".{path.name}.new")
    write(staged)
    if path.is_file() and path.read_bytes() == staged.read_bytes():
        staged.unlink()
        return False
    os.replace(staged, path)
    return True


def _clip_info(plans: Sequence[ClipPlan]) -> pd.DataFrame:
    return pd.DataFrame({
        "clip_id": [p.clip_id for p in plans],
        "track_number": [str(p.track_number) for p in plans],
        "title": [p.title for p in plans],
        "artist": [p.artist for p in plans],
        "album": [p.album for p in plans],
        "url": [f"http://demo.example.org/artists/{p.rel_path.split('/')[1].split('-')[0]}" for p in plans],
        "segmentStart": [str(p.segment_start) for p in plans],
        "segmentEnd": [str(p.segment_end) for p in plans],
        "original_url": [f"http://demo.example.org/all/{p.rel_path[2:].rsplit('-', 2)[0]}.mp3" for p in plans],
        "mp3_path": [p.rel_path for p in plans],
    })


def build_demo_corpus(out: Path, *, clips: int = 1500, seconds: float = 10.0, seed: int = 0,
                      label_dropout: float = 0.2, workers: int | None = None, progress: bool = True,
                      force: bool = False) -> Path:
    """Build (or complete) the synthesized demo corpus in ``out``; returns ``out``.

    Parameters
    ----------
    out : corpus folder (created; an existing demo corpus with the same seed and seconds is reused)
    clips : number of clips
    seconds : length of each clip in seconds
    seed : everything (arrangements, tags, names, folders, dropout) follows from it
    label_dropout : probability that the annotations omit a true tag (truth.csv keeps it)
    workers : rendering processes (default: CPU count)
    progress : show a progress bar
    force : re-render every clip, even where a valid mp3 exists

    Idempotent and resumable: a clip whose mp3 exists and decodes is not re-rendered; the mp3s
    are written atomically and the CSVs last, so a killed build resumes where it stopped.
    """
    _validate(clips, seconds, seed, label_dropout, workers)
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ParameterError(f"out must be a folder, got a file: {out}")
    out.mkdir(parents=True, exist_ok=True)
    _check_existing(out, seed, seconds, force)
    seconds = float(seconds)
    workers = int(workers or _cpu_count())
    parameters = {"seed": int(seed), "seconds": seconds, "generator_version": GENERATOR_VERSION,
                  "clips": int(clips), "label_dropout": float(label_dropout)}
    manifest = out / MANIFEST_FILE
    t0 = time.perf_counter()
    plans = plan_corpus(clips, seconds, seed)
    expected = [out / p.rel_path for p in plans] + [out / n for n in (ANNOTATIONS_FILE, TRUTH_FILE, CLIP_INFO_FILE)]
    if not force and _complete(manifest, parameters, expected):
        # a finished build with the same parameters: every mp3 was verified when it was written
        log.info("demo corpus in %s is complete (%d clips, seed %d); reusing it", out, len(plans), seed)
        return out
    write_json(manifest, {"status": "building", "parameters": parameters})
    jobs = [(int(seed), p.index, seconds, str(out / p.rel_path), bool(force)) for p in plans]
    rendered = _run_jobs(jobs, min(workers, len(jobs)), progress)
    elapsed = time.perf_counter() - t0

    truth = label_matrix(plans)
    annotations = sample_annotations(plans, float(label_dropout))
    ids = [p.clip_id for p in plans]
    paths = [p.rel_path for p in plans]
    _write_if_changed(out / CLIP_INFO_FILE, lambda tmp: write_clip_info(tmp, _clip_info(plans)))
    _write_if_changed(out / TRUTH_FILE, lambda tmp: write_annotations(tmp, ids, MTT_TAGS, truth, paths))
    # the annotations last: their presence marks the folder as a complete MTT-format corpus
    _write_if_changed(out / ANNOTATIONS_FILE, lambda tmp: write_annotations(tmp, ids, MTT_TAGS, annotations, paths))

    planned = {out / p.rel_path for p in plans}
    stale = [p for p in out.glob("[0-9a-f]/*.mp3") if p not in planned]
    if stale:
        log.warning("%d mp3s in %s are not part of this corpus (left from a larger or earlier build); the "
                    "annotations ignore them", len(stale), out)

    used = [t for t, n in zip(MTT_TAGS, truth.sum(axis=0)) if n]
    top50 = [t for t in TOP50_TAGS if t in used]
    splits = {s: sum(p.split == s for p in plans) for s in _SPLIT_SHARE}
    stats = {
        "clips": len(plans), "rendered": int(rendered), "reused": len(plans) - int(rendered),
        "seconds_of_audio": len(plans) * seconds, "build_seconds": round(elapsed, 2),
        "tags_used": len(used), "top50_tags_covered": len(top50),
        "missing_top50": [t for t in TOP50_TAGS if t not in used],
        "true_tags": int(truth.sum()), "annotated_tags": int(annotations.sum()),
        "split_sizes": splits, "recipes": {r.name: sum(p.recipe == r.name for p in plans) for r in R.RECIPES},
    }
    write_json(manifest, {"status": "complete", "parameters": parameters, "stats": stats})
    rate = rendered / elapsed if elapsed > 0 and rendered else 0.0
    log.info("demo corpus in %s: %d clips x %.1f s (%.2f h of audio); %d rendered (%.1f clips/s, %d workers), "
             "%d reused, in %.1f s", out, len(plans), seconds, len(plans) * seconds / 3600, rendered, rate, workers,
             len(plans) - rendered, elapsed)
    log.info("tags: %d MTT tags used, %d of MTT's top 50 covered; %d true tag labels, %d annotated "
             "(label dropout %.2f); split train/valid/test = %d/%d/%d", len(used), len(top50), stats["true_tags"],
             stats["annotated_tags"], label_dropout, splits["train"], splits["valid"], splits["test"])
    return out
