"""A demo clip's score: its plan turned into a `pretty_midi.PrettyMIDI`.

The chords of each harmonic step, every part's notes placed in seconds (swing, humanized
timing, the clip starting mid-song), pitch bends, channel volume and reverb.
"""

from __future__ import annotations

import math

import numpy as np

import pipeline.sources.demo.recipes as R
from pipeline.sources.demo.drums import drum_notes
from pipeline.sources.demo.parts import GENERATORS, Note, PartContext
from pipeline.sources.demo.plan import NOTES_STREAM, ClipPlan, PartPlan, rng_for


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

    rng = rng_for(plan.seed, plan.index, NOTES_STREAM)
    beat = 60.0 / plan.bpm
    shift = float(rng.uniform(0, plan.meter))
    n_beats = plan.seconds / beat + shift + 1
    lo, hi, volume, density = R.DYNAMICS[plan.dynamics]
    recipe = R.BY_NAME[plan.recipe]
    ctx = PartContext(plan=plan, rng=rng, beat=beat, n_beats=n_beats, shift=shift,
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
        notes = GENERATORS[part.role](ctx, part, part.style or part.role)
        instrument = pretty_midi.Instrument(program=part.program, name=part.role)
        spans = place(notes, instrument, jitter)
        instrument.pitch_bends = _bends(part, spans, rng, part.style)
        _controls(instrument, part.level * volume, recipe.reverb)
        midi.instruments.append(instrument)
    if plan.drums is not None:
        kit = pretty_midi.Instrument(program=R.DRUM_KITS[plan.drums], is_drum=True, name="drums")
        place(drum_notes(ctx, plan.drums), kit, jitter)
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
