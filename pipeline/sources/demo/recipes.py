"""Genre recipes of the synthesized demo corpus, as data.

A `Recipe` says which parts a genre plays (General MIDI programs, registers, playing styles),
which drum style, tempo classes and dynamics it allows, and which tags it always carries.
The planner (`pipeline.sources.demo.plan`) draws one concrete arrangement per clip and derives the
clip's true tags from what is actually played, so every tag is audible:

- genre tags come from `Recipe.tags` (a techno clip is four-on-the-floor synths, and so on);
- instrument tags from `PROGRAM_TAGS` for each part that plays;
- drum tags from `DRUM_TAGS` for the drum style (``None``: no drum kit, hence "no drums");
- vocal tags from the voice part (register decides male / female); no voice: "no vocals";
- "fast" / "slow" from the tempo class, "loud" / "soft" / "quiet" from the dynamics class;
- "solo" when one pitched part plays alone without drums.

Tags here are *concepts*; `SPELLINGS` lists the MagnaTagATune columns an annotator may use
for each (MTT's synonym columns: drum / drums, classic / classical ...), one drawn per clip,
so that synonym merging has real work to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.sources.mtt_tags import MTT_TAGS

# Scales as semitone offsets from the tonic.
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian_dominant": (0, 1, 4, 5, 7, 8, 10),  # Spanish / Middle-Eastern colour
    "bhairav": (0, 1, 4, 5, 7, 8, 11),  # raga scales for the Indian recipe
    "yaman": (0, 2, 4, 6, 7, 9, 11),
    "kafi": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "whole_tone": (0, 2, 4, 6, 8, 10),
    "chromatic": tuple(range(12)),
}

# Chord progressions as scale degrees (0 = tonic), one chord per harmonic step.
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 0, 4), (3, 4, 0, 0)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 0, 3, 4)),
    "modal": ((0, 6, 0, 6), (0, 3, 0, 3), (0, 0, 6, 3)),
    "drone": ((0,),),
    "blues": ((0, 0, 3, 0, 4, 3, 0, 4),),
    "jazz": ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4)),
}

# Tempo classes (BPM ranges). The gaps between classes keep "fast" and "slow" unambiguous.
TEMPO_CLASSES: dict[str, tuple[float, float]] = {"slow": (52.0, 74.0), "medium": (88.0, 124.0),
                                                 "fast": (138.0, 172.0)}

# Dynamics classes: note velocity range, channel-volume scale, and how full the texture is.
DYNAMICS: dict[str, tuple[int, int, float, float]] = {
    # name: (velocity low, velocity high, channel volume scale, density 0..1)
    "loud": (100, 124, 1.0, 1.0),
    "medium": (72, 94, 0.9, 0.7),
    "soft": (50, 68, 0.82, 0.45),
    "quiet": (34, 48, 0.72, 0.3),
}
DYNAMIC_TAGS: dict[str, tuple[str, ...]] = {"loud": ("loud",), "medium": (), "soft": ("soft",),
                                            "quiet": ("quiet", "soft")}
TEMPO_TAGS: dict[str, tuple[str, ...]] = {"slow": ("slow",), "medium": (), "fast": ("fast",)}

# Vocal registers (MIDI pitch ranges) by voice.
VOICE_REGISTERS: dict[str, tuple[int, int]] = {"female": (62, 81), "male": (45, 64)}

# Tags that a General MIDI program brings when its part plays.
PROGRAM_TAGS: dict[int, tuple[str, ...]] = {
    0: ("piano",), 1: ("piano",), 2: ("piano",), 4: ("piano",), 5: ("piano",),
    6: ("harpsichord",),
    8: ("bells",), 9: ("bells",), 10: ("bells",), 14: ("bells", "chimes"),
    16: ("organ",), 17: ("organ",), 19: ("organ",),
    24: ("guitar", "acoustic guitar", "acoustic"), 25: ("guitar", "acoustic guitar", "acoustic"),
    26: ("guitar",), 27: ("guitar", "electric guitar"),
    29: ("guitar", "electric guitar"), 30: ("guitar", "electric guitar"),
    32: ("bass",), 38: ("synth",), 39: ("synth",),
    40: ("violin",), 41: ("viola",), 42: ("cello",), 45: ("strings",), 46: ("harp",),
    48: ("strings",), 49: ("strings",), 50: ("synth", "strings"), 51: ("synth",),
    52: ("choir",), 53: (), 54: ("synth",),
    56: ("trumpet",), 57: ("horns",), 60: ("horn",), 61: ("horns",),
    64: ("sax",), 65: ("sax",), 66: ("sax",),
    68: ("oboe",), 71: ("clarinet",), 73: ("flute",), 75: ("flute",), 78: ("flute",),
    80: ("synth",), 81: ("synth",), 82: ("synth",), 84: ("synth",), 85: ("synth",), 87: ("synth",),
    88: ("synth",), 89: ("synth",), 90: ("synth",), 91: ("synth",), 92: ("synth",), 94: ("synth",),
    95: ("synth",), 96: ("synth",), 98: ("synth",), 99: ("synth",), 100: ("synth",),
    101: ("synth",), 102: ("synth",), 103: ("synth",),
    104: ("sitar",), 105: ("banjo",), 109: ("bagpipes",), 110: ("fiddle", "violin"), 111: (),
    122: ("water",), 123: ("birds",),
}

# Drum styles: GM drum-kit program and the tags the style carries.
DRUM_KITS: dict[str, int] = {
    "rock": 16, "metal": 16, "pop": 8, "country": 40, "jazz": 32,  # the brush kit (40) renders slowly
    "four_floor": 25, "house": 24, "trance": 24, "hiphop": 25, "tabla": 0,
}
DRUM_TAGS: dict[str | None, tuple[str, ...]] = {
    None: ("no drums",),
    "rock": ("drums",), "metal": ("drums",), "pop": ("drums",), "country": ("drums",),
    "jazz": ("drums",),
    # programmed electronic kits: the steady "beat" of MTT's electronic clips
    "four_floor": ("drums", "beat"), "house": ("drums", "beat"), "trance": ("drums", "beat"),
    "hiphop": ("drums", "beat"),
    "tabla": ("percussion",),
}

# Concept -> ((MTT column, weight), ...): the spellings an annotator may use for one concept.
SPELLINGS: dict[str, tuple[tuple[str, float], ...]] = {
    "classical": (("classical", 0.78), ("classic", 0.2), ("clasical", 0.02)),
    "drums": (("drums", 0.72), ("drum", 0.28)),
    "beat": (("beat", 0.7), ("beats", 0.3)),
    "electronic": (("electronic", 0.72), ("electro", 0.14), ("electronica", 0.14)),
    "fast": (("fast", 0.9), ("quick", 0.05), ("fast beat", 0.05)),
    "quiet": (("quiet", 0.96), ("silence", 0.04)),
    "female": (("female", 0.38), ("woman", 0.2), ("female vocal", 0.16), ("female voice", 0.14),
               ("female singer", 0.06), ("woman singing", 0.03), ("female vocals", 0.03)),
    "male": (("male", 0.34), ("male vocal", 0.2), ("man", 0.17), ("male voice", 0.15),
             ("male singer", 0.06), ("man singing", 0.04), ("male vocals", 0.04)),
    "vocal": (("vocal", 0.44), ("vocals", 0.36), ("voice", 0.2)),
    "voices": (("voices", 0.5), ("vocals", 0.3), ("vocal", 0.2)),
    "singing": (("singing", 0.78), ("singer", 0.22)),
    "no vocals": (("no vocals", 0.32), ("no vocal", 0.25), ("no voice", 0.25), ("instrumental", 0.1),
                  ("no voices", 0.04), ("no singing", 0.02), ("no singer", 0.02)),
    "no drums": (("no drums", 0.62), ("no beat", 0.38)),
    "choir": (("choir", 0.6), ("choral", 0.4)),
    "strings": (("strings", 0.86), ("string", 0.14)),
    "violin": (("violin", 0.86), ("violins", 0.14)),
    "metal": (("metal", 0.62), ("heavy metal", 0.2), ("heavy", 0.18)),
    "india": (("indian", 0.8), ("india", 0.2)),
    "harpsichord": (("harpsichord", 0.9), ("harpsicord", 0.1)),
    "flute": (("flute", 0.9), ("flutes", 0.1)),
    "guitar": (("guitar", 0.9), ("guitars", 0.1)),
    "synth": (("synth", 0.85), ("synthesizer", 0.15)),
    "opera": (("opera", 0.8), ("operatic", 0.2)),
    "weird": (("weird", 0.6), ("strange", 0.4)),
    "space": (("spacey", 0.5), ("space", 0.5)),
    "orchestra": (("orchestral", 0.55), ("orchestra", 0.45)),
    "chant": (("chant", 0.6), ("chanting", 0.4)),
    "horns": (("horns", 0.6), ("horn", 0.4)),
    "jazz": (("jazz", 0.8), ("jazzy", 0.2)),
    "hard rock": (("hard rock", 0.7), ("hard", 0.3)),
    "bagpipes": (("celtic", 1.0),),  # MTT has no bagpipe column; annotators hear "celtic"
}


@dataclass(frozen=True)
class Part:
    """One voice of an arrangement.

    Attributes
    ----------
    role : generator name: melody, chords, arp, bass, riff, drone, vocal, choir, fx
    programs : GM programs to choose from (one per clip)
    register : (low, high) MIDI pitch range; vocal parts take theirs from `VOICE_REGISTERS`
    p : probability that the part plays in a clip (scaled up when loud, down when quiet)
    styles : playing styles to choose from (generator-specific)
    level : mix level, 0..1 (MIDI channel volume before the dynamics scale)
    tags : extra concepts the part brings when it plays (beyond `PROGRAM_TAGS`)
    voices : for vocal parts, the voices to choose from ("female", "male")
    """

    role: str
    programs: tuple[int, ...]
    register: tuple[int, int] = (48, 72)
    p: float = 1.0
    styles: tuple[str, ...] = ("",)
    level: float = 0.8
    tags: tuple[str, ...] = ()
    voices: tuple[str, ...] = ("female", "male")


@dataclass(frozen=True)
class Recipe:
    """A genre: its parts, drums, tempo, dynamics, harmony and always-true tags.

    ``parts`` holds `Part`s and tuples of alternatives (one alternative is drawn per clip).
    ``weight`` is the number of clips of this genre in every block of `block_size()` clips.
    """

    name: str
    weight: int
    tags: tuple[str, ...]
    parts: tuple[Part | tuple[Part, ...], ...]
    drums: tuple[tuple[str | None, float], ...] = ((None, 1.0),)
    tempo: tuple[tuple[str, float], ...] = (("medium", 1.0),)
    dynamics: tuple[tuple[str, float], ...] = (("medium", 1.0),)
    scales: tuple[str, ...] = ("major", "minor")
    harmony: str = "auto"  # progression family; "auto": major or minor by scale
    meter: tuple[int, ...] = (4,)
    swing: bool = False
    humanize: bool = True  # small timing jitter (off for programmed electronic music)
    reverb: int = 60  # MIDI CC91 send
    gain_db: float = 0.0  # mastering gain of the genre (quiet SoundFont instruments such as the piano get more)
    artists: tuple[str, ...] = field(default=("anonymous",))


_STRINGS_LOW = (36, 60)
_PAD = (48, 72)

RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "orchestral", 9, ("classical", "orchestra"),
        parts=(
            Part("chords", (48, 49), _PAD, styles=("hold",), level=0.75),  # ensembles are costly to render
            (Part("melody", (40,), (62, 88), styles=("lyrical", "ornamented")),
             Part("melody", (73,), (64, 91), styles=("lyrical", "ornamented")),
             Part("melody", (68,), (60, 84), styles=("lyrical",)),
             Part("melody", (60,), (48, 72), styles=("lyrical",))),
            Part("bass", (42, 43), _STRINGS_LOW, styles=("root", "pizz")),
            Part("melody", (71,), (55, 79), p=0.3, styles=("counter",), level=0.6),
        ),
        tempo=(("slow", 0.35), ("medium", 0.35), ("fast", 0.3)),
        dynamics=(("loud", 0.3), ("medium", 0.3), ("soft", 0.25), ("quiet", 0.15)),
        scales=("major", "minor", "harmonic_minor"), reverb=80,
        artists=("london_chamber_players", "vienna_symphonic_society", "the_royal_sinfonia",
                 "orchestra_of_the_north", "philharmonia_nova"),
    ),
    Recipe(
        "string_quartet", 6, ("classical", "strings"),
        parts=(
            Part("melody", (40,), (64, 88), styles=("lyrical", "ornamented")),
            Part("chords", (41,), (52, 72), styles=("pulse", "hold"), level=0.65),
            Part("bass", (42,), (36, 57), styles=("root", "pizz", "pulse8")),
        ),
        tempo=(("slow", 0.4), ("medium", 0.3), ("fast", 0.3)),
        dynamics=(("medium", 0.4), ("soft", 0.35), ("quiet", 0.25)),
        scales=("major", "minor"), reverb=70,
        artists=("the_aurora_quartet", "quartetto_lumen", "hartmann_string_quartet"),
    ),
    Recipe(
        "baroque", 6, ("classical", "baroque"),
        parts=(
            Part("arp", (6,), (48, 76), styles=("alberti", "up")),
            (Part("melody", (40,), (64, 88), styles=("ornamented",)),
             Part("melody", (73,), (67, 91), styles=("ornamented",)),
             Part("melody", (68,), (62, 84), styles=("ornamented",))),
            Part("bass", (42,), _STRINGS_LOW, styles=("pulse8", "root")),
        ),
        tempo=(("medium", 0.4), ("fast", 0.6)),
        dynamics=(("medium", 0.7), ("soft", 0.3)),
        scales=("major", "minor"), reverb=60,
        artists=("american_baroque_soloists", "ensemble_galant", "the_bach_collegium"),
    ),
    Recipe(
        "harpsichord_solo", 3, ("classical", "baroque"),
        parts=(Part("arp", (6,), (45, 81), styles=("alberti", "up", "updown")),),
        tempo=(("medium", 0.5), ("fast", 0.5)),
        dynamics=(("medium", 0.7), ("soft", 0.3)),
        reverb=50, gain_db=5.0, artists=("jan_de_klavier", "maria_scarlatti_kaye"),
    ),
    Recipe(
        "piano_solo", 8, ("classical",),
        parts=(Part("melody", (0,), (64, 86), styles=("lyrical", "ornamented")),
               Part("arp", (0,), (40, 64), styles=("alberti", "up", "block"), level=0.65)),
        tempo=(("slow", 0.45), ("medium", 0.35), ("fast", 0.2)),
        dynamics=(("loud", 0.1), ("medium", 0.3), ("soft", 0.35), ("quiet", 0.25)),
        scales=("major", "minor", "harmonic_minor"), reverb=60, gain_db=6.0,
        artists=("elena_kovac", "the_nocturne_pianist", "hugo_lindqvist", "claire_duvall"),
    ),
    Recipe(
        "classical_guitar", 4, ("classical",),
        parts=(Part("arp", (24,), (40, 76), styles=("up", "updown", "alberti")),),
        tempo=(("slow", 0.4), ("medium", 0.4), ("fast", 0.2)),
        dynamics=(("medium", 0.4), ("soft", 0.4), ("quiet", 0.2)),
        scales=("minor", "harmonic_minor", "phrygian_dominant", "major"), reverb=55, gain_db=3.0,
        artists=("paco_del_rio", "guitarra_serena", "andres_molina"),
    ),
    Recipe(
        "harp", 3, ("classical",),
        parts=(Part("arp", (46,), (43, 84), styles=("up", "updown")),
               Part("melody", (73,), (64, 88), p=0.35, styles=("lyrical",))),
        tempo=(("slow", 0.6), ("medium", 0.4)),
        dynamics=(("soft", 0.55), ("quiet", 0.3), ("medium", 0.15)),
        scales=("major", "pentatonic"), reverb=85, gain_db=3.0,
        artists=("celestine_harp", "the_harpist_of_avalon"),
    ),
    Recipe(
        "bowed_solo", 3, ("classical",),
        parts=((Part("melody", (40,), (60, 88), styles=("lyrical", "ornamented")),
                Part("melody", (42,), (40, 67), styles=("lyrical",))),),
        tempo=(("slow", 0.6), ("medium", 0.3), ("fast", 0.1)),
        dynamics=(("medium", 0.4), ("soft", 0.4), ("quiet", 0.2)),
        scales=("minor", "major", "harmonic_minor"), reverb=75, gain_db=2.0,
        artists=("solo_arco", "ilse_brandt", "the_lonely_bow"),
    ),
    Recipe(
        "opera", 5, ("classical", "opera"),
        parts=(
            Part("vocal", (53,), styles=("opera",), level=0.95),
            Part("chords", (48, 49), _PAD, styles=("hold",), level=0.6),
            Part("bass", (42,), _STRINGS_LOW, styles=("root",), level=0.65),
            Part("arp", (46,), (48, 79), p=0.35, styles=("up",), level=0.55),
        ),
        tempo=(("slow", 0.55), ("medium", 0.45)),
        dynamics=(("loud", 0.3), ("medium", 0.5), ("soft", 0.2)),
        scales=("major", "minor"), reverb=85,
        artists=("la_scala_ensemble", "teatro_verde", "maria_bellini_soprano"),
    ),
    Recipe(
        "choral", 4, ("classical",),
        parts=(Part("choir", (52,), (45, 79), styles=("hold", "pulse"), level=0.9),
               Part("chords", (19,), (36, 67), p=0.3, styles=("hold",), level=0.55)),
        tempo=(("slow", 0.7), ("medium", 0.3)),
        dynamics=(("medium", 0.4), ("soft", 0.4), ("quiet", 0.2)),
        scales=("major", "minor"), reverb=100,
        artists=("st_cecilia_choir", "cantores_lucis", "the_cathedral_singers"),
    ),
    Recipe(
        "chant", 2, ("medieval",),
        parts=(Part("vocal", (52,), styles=("chant",), voices=("male",), level=0.95, tags=("chant", "monks")),
               Part("drone", (52,), (38, 55), level=0.5)),
        harmony="drone", tempo=(("slow", 1.0),),
        dynamics=(("soft", 0.6), ("medium", 0.4)),
        scales=("dorian", "minor"), reverb=110,
        artists=("monks_of_santa_croce", "schola_gregoriana"),
    ),
    Recipe(
        "ambient", 7, ("ambient",),
        parts=(
            Part("chords", (88, 89, 91, 92, 94, 95), _PAD, styles=("hold",), level=0.8),
            Part("drone", (89, 90, 92), (36, 55), p=0.6, level=0.6),
            (Part("melody", (8, 10, 14), (67, 91), p=0.5, styles=("sparse",), level=0.55),
             Part("fx", (96, 99, 100, 102), (48, 84), p=0.5, styles=("sparse",), level=0.5, tags=("space",))),
            (Part("fx", (123,), (70, 90), p=0.15, styles=("sparse",), level=0.5),
             Part("fx", (122,), (50, 70), p=0.15, styles=("swell",), level=0.5)),
        ),
        harmony="modal", tempo=(("slow", 1.0),),
        dynamics=(("quiet", 0.55), ("soft", 0.45)),
        scales=("major", "pentatonic", "dorian"), humanize=False, reverb=120, gain_db=3.0,
        artists=("drift_atlas", "cloud_harbour", "solaris_fields", "the_quiet_orbit"),
    ),
    Recipe(
        "new_age", 5, ("new age",),
        parts=(
            Part("chords", (88, 89, 91), _PAD, styles=("hold",), level=0.65),
            (Part("melody", (0,), (60, 84), styles=("lyrical",)),
             Part("arp", (46,), (48, 84), styles=("up", "updown")),
             Part("melody", (73, 75), (64, 88), styles=("lyrical",))),
            Part("arp", (0,), (48, 72), p=0.3, styles=("up",), level=0.55),
        ),
        tempo=(("slow", 0.7), ("medium", 0.3)),
        dynamics=(("soft", 0.6), ("quiet", 0.3), ("medium", 0.1)),
        scales=("major", "pentatonic"), reverb=110, gain_db=3.0,
        artists=("crystal_meadow", "serenity_now_ensemble", "the_lotus_garden"),
    ),
    Recipe(
        "techno", 9, ("techno", "electronic"),
        parts=(
            Part("bass", (38, 39), (33, 52), styles=("offbeat", "pulse16"), level=0.85),
            Part("riff", (80, 81, 84, 87), (55, 79), styles=("stab", "seq"), level=0.7),
            Part("chords", (90, 95, 50), _PAD, p=0.4, styles=("hold",), level=0.5),
        ),
        drums=(("four_floor", 1.0),), harmony="modal",
        tempo=(("fast", 0.75), ("medium", 0.25)),
        dynamics=(("loud", 0.6), ("medium", 0.4)),
        scales=("minor", "dorian"), humanize=False, reverb=40,
        artists=("kraftmaschine", "berlin_substation", "null_sector", "acid_grid"),
    ),
    Recipe(
        "trance", 3, ("trance", "electronic", "dance"),
        parts=(
            Part("arp", (81, 80), (60, 84), styles=("up16",), level=0.7),
            Part("chords", (90, 50, 95), _PAD, styles=("hold",), level=0.6),
            Part("bass", (38,), (33, 52), styles=("offbeat",), level=0.8),
        ),
        drums=(("trance", 1.0),), tempo=(("fast", 1.0),),
        dynamics=(("loud", 0.6), ("medium", 0.4)),
        scales=("minor",), humanize=False, reverb=70,
        artists=("euphoria_state", "starlight_odyssey"),
    ),
    Recipe(
        "dance", 5, ("dance", "electronic"),
        parts=(
            (Part("chords", (0, 1), (55, 76), styles=("stab",), level=0.75, tags=("house",)),
             Part("chords", (81, 87, 50), (55, 76), styles=("stab",), level=0.7)),
            Part("bass", (38, 33), (33, 52), styles=("octave", "offbeat"), level=0.8),
            Part("vocal", (53,), styles=("pop",), p=0.5, voices=("female",), level=0.8),
        ),
        drums=(("house", 0.6), ("four_floor", 0.4)), tempo=(("medium", 1.0),),
        dynamics=(("loud", 0.5), ("medium", 0.5)),
        scales=("minor", "major"), humanize=False, reverb=50,
        artists=("club_meridian", "the_disco_factory", "funky_sequence"),
    ),
    Recipe(
        "electronic_weird", 3, ("weird", "electronic"),
        parts=(
            Part("fx", (96, 98, 99, 101, 102, 103), (36, 96), styles=("glitch",), level=0.7),
            Part("fx", (81, 84, 87), (36, 84), styles=("glitch",), level=0.6),
            Part("drone", (92, 95), (30, 50), p=0.5, level=0.5, tags=("dark",)),
        ),
        drums=((None, 0.7), ("hiphop", 0.3)), harmony="drone",
        tempo=(("slow", 0.3), ("medium", 0.7)),
        dynamics=(("medium", 0.6), ("soft", 0.4)),
        scales=("chromatic", "whole_tone"), humanize=False, reverb=90,
        artists=("circuit_bent_choir", "the_glitch_lab", "xenomorph_tapes"),
    ),
    Recipe(
        "rock", 9, ("rock",),
        parts=(
            Part("riff", (29, 30), (40, 64), styles=("power8", "power4"), level=0.85),
            Part("bass", (33, 34), (28, 48), styles=("pulse8", "root"), level=0.8),
            (Part("vocal", (53,), styles=("pop",), p=0.55, voices=("male", "male", "female")),
             Part("melody", (27, 29), (55, 79), p=0.35, styles=("riff",), level=0.7)),
        ),
        drums=(("rock", 1.0),), tempo=(("medium", 0.6), ("fast", 0.4)),
        dynamics=(("loud", 0.6), ("medium", 0.4)),
        scales=("minor_pentatonic", "mixolydian", "minor", "major"), reverb=40,
        artists=("the_rusted_amps", "highway_static", "black_river_band", "velvet_thunder"),
    ),
    Recipe(
        "metal", 4, ("metal", "rock", "hard rock"),
        parts=(
            Part("riff", (30,), (38, 60), styles=("gallop", "chug16"), level=0.9),
            Part("bass", (34,), (28, 45), styles=("pulse16",), level=0.75),
            Part("melody", (30,), (57, 84), p=0.35, styles=("riff",), level=0.7),
        ),
        drums=(("metal", 1.0),), tempo=(("fast", 1.0),),
        dynamics=(("loud", 1.0),),
        scales=("minor", "phrygian_dominant", "harmonic_minor"), reverb=35,
        artists=("iron_sepulchre", "doomcrown", "the_molten_horde"),
    ),
    Recipe(
        "pop", 7, ("pop",),
        parts=(
            (Part("chords", (0, 4), (52, 76), styles=("pulse", "hold")),
             Part("chords", (25, 27), (48, 72), styles=("strum",))),
            Part("bass", (33, 38), (28, 50), styles=("root", "pulse8"), level=0.75),
            Part("vocal", (53,), styles=("pop",), level=0.9),
            Part("chords", (89, 81), _PAD, p=0.4, styles=("hold",), level=0.5),
        ),
        drums=(("pop", 0.5), ("hiphop", 0.5)), tempo=(("medium", 1.0),),
        dynamics=(("medium", 0.7), ("loud", 0.3)),
        scales=("major", "minor"), reverb=60,
        artists=("sunny_avenue", "the_paper_hearts", "lila_moon", "neon_postcards"),
    ),
    Recipe(
        "country", 4, ("country",),
        parts=(
            Part("chords", (25,), (45, 69), styles=("strum",), level=0.8),
            Part("arp", (105,), (55, 79), p=0.7, styles=("roll",), level=0.65),
            Part("melody", (110,), (62, 86), p=0.5, styles=("lyrical",), level=0.7),
            Part("bass", (32,), (28, 48), styles=("alternate",), level=0.75),
            Part("vocal", (53,), styles=("pop",), p=0.5, voices=("male", "female")),
        ),
        drums=(("country", 0.8), (None, 0.2)), tempo=(("medium", 0.6), ("fast", 0.4)),
        dynamics=(("medium", 1.0),),
        scales=("major", "mixolydian"), reverb=45,
        artists=("dusty_boots", "the_prairie_kings", "tennessee_lanterns"),
    ),
    Recipe(
        "indian", 6, ("india", "eastern"),
        parts=(
            Part("melody", (104,), (57, 84), styles=("raga",), level=0.9),
            Part("drone", (104,), (36, 52), styles=("tanpura",), level=0.6),
            Part("melody", (111, 73), (62, 84), p=0.2, styles=("raga",), level=0.6),
        ),
        drums=(("tabla", 0.65), (None, 0.35)), harmony="drone",
        tempo=(("slow", 0.4), ("medium", 0.35), ("fast", 0.25)),
        dynamics=(("medium", 0.6), ("soft", 0.4)),
        scales=("bhairav", "yaman", "kafi"), reverb=60,
        artists=("ravi_shankar_das", "the_bombay_ensemble", "anoushka_raga_trio"),
    ),
    Recipe(
        "celtic", 3, ("celtic", "irish", "folk"),
        parts=(
            (Part("melody", (110,), (62, 88), styles=("reel",)),
             Part("melody", (73, 78), (67, 93), styles=("reel",))),
            Part("chords", (24, 25), (45, 69), styles=("strum",), level=0.7),
            Part("drone", (109,), (45, 57), p=0.3, level=0.5),
        ),
        tempo=(("fast", 0.7), ("medium", 0.3)),
        dynamics=(("medium", 0.8), ("loud", 0.2)),
        scales=("major", "dorian", "mixolydian"), reverb=55,
        artists=("the_galway_strays", "shamrock_reel_band"),
    ),
    Recipe(
        "jazz", 4, ("jazz",),
        parts=(
            (Part("melody", (65, 66), (55, 80), styles=("swing",)),
             Part("melody", (56,), (58, 82), styles=("swing",))),
            Part("chords", (0,), (52, 72), styles=("comp",), level=0.65),
            Part("bass", (32,), (28, 50), styles=("walking",), level=0.8),
        ),
        drums=(("jazz", 1.0),), harmony="jazz", swing=True,
        tempo=(("medium", 0.6), ("fast", 0.2), ("slow", 0.2)),
        dynamics=(("medium", 0.7), ("soft", 0.3)),
        scales=("major", "dorian"), reverb=50,
        artists=("blue_note_quintet", "miles_ahead_trio", "the_smoky_room"),
    ),
)


def block_size() -> int:
    """Clips per genre-schedule block: the sum of the recipes' weights."""
    return sum(r.weight for r in RECIPES)


def _check() -> None:
    """Internal consistency: every spelling is an MTT column; recipe names are unique."""
    columns = set(MTT_TAGS)
    for concept, spellings in SPELLINGS.items():
        for tag, _ in spellings:
            assert tag in columns, f"spelling {tag!r} of {concept!r} is not an MTT tag"
    assert len({r.name for r in RECIPES}) == len(RECIPES)
    concepts = {t for tags in (*PROGRAM_TAGS.values(), *DRUM_TAGS.values(), *DYNAMIC_TAGS.values(),
                               *TEMPO_TAGS.values()) for t in tags}
    for recipe in RECIPES:
        assert recipe.weight >= 2, f"{recipe.name}: weight < 2 breaks the per-split genre spread"
        concepts.update(recipe.tags)
        for entry in recipe.parts:
            for part in entry if isinstance(entry, tuple) else (entry,):
                concepts.update(part.tags)
    for concept in concepts:
        assert concept in SPELLINGS or concept in columns, f"tag concept {concept!r} is not an MTT tag"


_check()
BY_NAME: dict[str, Recipe] = {r.name: r for r in RECIPES}  # unique names (checked above)
