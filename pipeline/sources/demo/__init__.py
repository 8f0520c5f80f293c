"""The synthesized demo corpus: MagnaTagATune's exact shape, with audio rendered from MIDI.

Each clip is planned from ``(seed, clip index)`` alone (`plan.plan_clip`): a genre recipe
(`recipes`), a tempo class, a dynamics class, a key, a chord progression and a concrete
arrangement. Its true tags are derived from what is actually played. The plan is turned
into MIDI (`midi.clip_midi`, with the notes of `parts` and `drums`), rendered through the
General MIDI SoundFont that ships with pretty_midi (``TimGM6mb.sf2``) with ``midirenderer``,
mixed to mono, resampled to 16 kHz and encoded as a 32 kbit/s mp3, like MagnaTagATune
(`render`).

The corpus folder holds ``annotations_final.csv`` (each true tag dropped with probability
``label_dropout``, as human taggers miss tags), ``truth.csv`` (every true tag),
``clip_info_final.csv`` (`annotate`), the mp3s in folders ``0``-``9`` and ``a``-``f`` (the
folder decides MTT's split: 0-b train, c valid, d-f test) and ``demo_corpus.json`` (build
parameters and statistics; `build`).

Modules, in the order a clip flows through them: `recipes` (genres as data), `plan`,
`parts` and `drums` (notes), `midi`, `render`, `annotate`, `build`.

Examples
--------
>>> from pathlib import Path
>>> from pipeline.sources.demo import build_demo_corpus
>>> build_demo_corpus(Path("data/demo"), clips=40, seconds=4, progress=False)  # doctest: +SKIP
"""

from pipeline.sources.demo.build import MANIFEST_FILE, build_demo_corpus

__all__ = ["MANIFEST_FILE", "build_demo_corpus"]
