"""The notes of a demo clip's pitched parts, one generator per role.

Each generator takes the clip's `PartContext` (harmony, time grid, dynamics and the notes
rng), one `PartPlan` and its playing style, and returns `Note`s in beats; `GENERATORS` maps a
part's role to its generator. The drum kit has its own module (`pipeline.sources.demo.drums`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.sources.demo.plan import ClipPlan, PartPlan, choice


@dataclass
class PartContext:
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


def _line(ctx: PartContext, part: PartPlan, style: str) -> list[Note]:
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
            length = float(choice(rng, lengths, weights))
            if rng.random() < rest_p or (vocal and b - start > phrase - 2 and rng.random() < 0.6):
                b += length  # rest (a singer breathes at the end of a phrase)
                continue
            if (b % ctx.plan.meter) == 0 and rng.random() < 0.6:  # chord tone on the downbeat
                n = len(ctx.scale)
                target = ctx.chord_at(b) + choice(rng, (0, 2, 4)) + n * round((degree - ctx.chord_at(b)) / n)
                degree = int(np.clip(target, dmin, dmax))
            else:
                degree = int(np.clip(degree + choice(rng, steps, step_w), dmin, dmax))
            accent = 8 if b % ctx.plan.meter == 0 else 0
            legato = 0.98 if vocal or style in ("lyrical", "opera") else 0.85
            notes.append((ctx.pitch(base, degree), b, length * legato, ctx.velocity(accent)))
            motif.append((b - start, length * legato, degree - root))
            b += length
        b = start + phrase
    return notes


def _riff(ctx: PartContext, part: PartPlan, style: str) -> list[Note]:
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


def _chords(ctx: PartContext, part: PartPlan, style: str) -> list[Note]:
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


def _arp(ctx: PartContext, part: PartPlan, style: str) -> list[Note]:
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


def _bass(ctx: PartContext, part: PartPlan, style: str) -> list[Note]:
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


def _drone(ctx: PartContext, part: PartPlan, style: str) -> list[Note]:
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


def _choir(ctx: PartContext, part: PartPlan, style: str) -> list[Note]:
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


def _fx(ctx: PartContext, part: PartPlan, style: str) -> list[Note]:
    """Sound effects: sparse events (bells, birds), slow swells (sea), or atonal glitches."""
    rng = ctx.rng
    low, high = part.register
    notes: list[Note] = []
    if style == "glitch":
        b = 0.0
        while b < ctx.n_beats:
            length = float(choice(rng, (0.25, 0.5, 0.75, 1.5, 3.0)))
            if rng.random() < 0.7:
                notes.append((int(rng.integers(low, high + 1)), b + rng.uniform(0, 0.2), length,
                              ctx.velocity(int(rng.integers(-15, 15)))))
            b += float(choice(rng, (0.25, 0.5, 0.75, 1.0, 1.5)))
        return notes
    base, dmin, dmax = ctx.degree_range(low, high)
    b = float(rng.uniform(0, 2))
    while b < ctx.n_beats:
        length = float(rng.uniform(3, 6)) if style == "swell" else float(rng.uniform(1, 3))
        notes.append((ctx.pitch(base, int(rng.integers(dmin, dmax + 1))), b, length, ctx.velocity(0, 0.9)))
        b += length if style == "swell" else float(rng.uniform(1.5, 4))
    return notes


GENERATORS = {"melody": _line, "vocal": _line, "riff": _riff, "chords": _chords, "arp": _arp, "bass": _bass,
               "drone": _drone, "choir": _choir, "fx": _fx}
