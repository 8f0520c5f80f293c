"""The drum track of a demo clip: kit patterns with fills and crashes, a jazz ride, or tabla."""

from __future__ import annotations

import math

from pipeline.sources.demo.parts import Note, PartContext
from pipeline.sources.demo.plan import choice

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


def drum_notes(ctx: PartContext, style: str) -> list[Note]:
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
    pattern = choice(rng, _DRUM_PATTERNS[style])
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
                notes.append((choice(rng, (38, 45, 47, 48, 50)), b0 + s * 0.25, 0.2, ctx.velocity(8)))
        if bar % 4 == 0 and style in ("rock", "metal", "pop", "trance"):
            notes.append((49, b0, 1.0, ctx.velocity(6)))
    return notes
