"""Planning a demo clip: everything about it drawn from ``(seed, clip index)`` alone.

`plan_clip` picks the clip's folder (hence its MTT split), its genre recipe, tempo and
dynamics classes, key, chord progression and arrangement, and derives its true tags from
what the arrangement plays; names and the mp3 path follow. Each clip draws from its own
random streams (`rng_for`), so clips plan and render in any order and a corpus that grows
keeps its first clips unchanged (prefix-stable).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import pipeline.sources.demo.recipes as R
from pipeline.errors import ParameterError
from pipeline.sources.mtt_format import AUDIO_FOLDERS, FOLDER_SPLIT, SAMPLE_RATE
from pipeline.sources.mtt_tags import MTT_TAGS

# Random streams of one clip: its plan, its notes, the simulated annotator's dropout.
PLAN_STREAM, NOTES_STREAM, DROPOUT_STREAM = 0, 1, 2

_SPLIT_SHARE = Counter(FOLDER_SPLIT.values())  # folders per split, out of 16: train 12, valid 1, test 3
_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2}


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


def rng_for(seed: int, index: int, stream: int) -> np.random.Generator:
    """An independent generator per (seed, clip, stream): clips plan and render in any order."""
    return np.random.default_rng([seed, index, stream])


def choice(rng: np.random.Generator, options: Sequence, weights: Sequence[float] | None = None):
    """One element of ``options`` (optionally weighted), keeping Python types."""
    if weights is None:
        return options[int(rng.integers(len(options)))]
    p = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


@functools.lru_cache(maxsize=4096)
def _folder_cycle(seed: int, cycle: int) -> str:
    """The 16 folders in a seeded order: every 16 consecutive clips fill each folder once."""
    rng = np.random.default_rng([seed, cycle, 0xF0])
    return "".join(AUDIO_FOLDERS[i] for i in rng.permutation(16))


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
            tags.add(choice(rng, names, weights))
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
    rng = rng_for(seed, index, PLAN_STREAM)
    folder, drawn = _recipe_for(seed, index)
    if recipe is not None:
        if recipe not in R.BY_NAME:
            raise ParameterError(f"recipe must be one of {sorted(R.BY_NAME)}, got {recipe!r}")
        drawn = R.BY_NAME[recipe]
    rec = drawn
    tempo_class = choice(rng, *zip(*rec.tempo))
    dyn = choice(rng, *zip(*rec.dynamics))
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
    scale = choice(rng, rec.scales)
    tonic = int(rng.integers(12))
    family = rec.harmony if rec.harmony != "auto" else ("minor" if "minor" in scale else "major")
    progression = choice(rng, R.PROGRESSIONS[family])
    meter = choice(rng, rec.meter)
    drums = choice(rng, *zip(*rec.drums))

    parts: list[PartPlan] = []
    specs: list[R.Part] = []
    for entry in rec.parts:
        spec = choice(rng, entry) if isinstance(entry, tuple) else entry
        keep = rng.random() < min(1.0, spec.p * _PART_PROB_SCALE[dyn]) if spec.p < 1 else True
        program = choice(rng, spec.programs)
        style = choice(rng, spec.styles)
        voice = choice(rng, spec.voices) if spec.role == "vocal" else None
        if keep:
            register = R.VOICE_REGISTERS[voice] if voice else spec.register
            if spec.role == "vocal" and style == "opera" and voice == "female":
                register = (67, 86)  # soprano
            parts.append(PartPlan(spec.role, program, register, style, spec.level, voice))
            specs.append(spec)
    concepts = _concepts(rec, parts, drums, tempo_class, dyn, specs)
    tags = _spell(concepts, rng)

    artist = choice(rng, rec.artists)
    album = f"{choice(rng, _WORDS_A)} {choice(rng, _WORDS_B)}"
    title = f"{choice(rng, _WORDS_A)} {choice(rng, _WORDS_B)} {index + 1}"
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
