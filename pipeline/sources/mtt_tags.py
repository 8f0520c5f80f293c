"""MagnaTagATune's tag vocabulary, as facts about the dataset.

`MTT_TAGS` lists the 188 tag columns of ``annotations_final.csv`` in file order;
`SYNONYMS` holds the 29 synonym groups merged in the Music-Tagger paper (Choi et al.,
following the magnatagatune-list notes): each group is folded into its first name.
"""

from __future__ import annotations

MTT_TAGS: tuple[str, ...] = (
    "no voice", "singer", "duet", "plucking", "hard rock", "world", "bongos", "harpsichord",
    "female singing", "clasical", "sitar", "chorus", "female opera", "male vocal", "vocals",
    "clarinet", "heavy", "silence", "beats", "men", "woodwind", "funky", "no strings",
    "chimes", "foreign", "no piano", "horns", "classical", "female", "no voices", "soft rock",
    "eerie", "spacey", "jazz", "guitar", "quiet", "no beat", "banjo", "electric", "solo",
    "violins", "folk", "female voice", "wind", "happy", "ambient", "new age", "synth", "funk",
    "no singing", "middle eastern", "trumpet", "percussion", "drum", "airy", "voice",
    "repetitive", "birds", "space", "strings", "bass", "harpsicord", "medieval", "male voice",
    "girl", "keyboard", "acoustic", "loud", "classic", "string", "drums", "electronic",
    "not classical", "chanting", "no violin", "not rock", "no guitar", "organ", "no vocal",
    "talking", "choral", "weird", "opera", "soprano", "fast", "acoustic guitar",
    "electric guitar", "male singer", "man singing", "classical guitar", "country", "violin",
    "electro", "reggae", "tribal", "dark", "male opera", "no vocals", "irish", "electronica",
    "horn", "operatic", "arabic", "lol", "low", "instrumental", "trance", "chant", "strange",
    "drone", "synthesizer", "heavy metal", "modern", "disco", "bells", "man", "deep",
    "fast beat", "industrial", "hard", "harp", "no flute", "jungle", "pop", "lute",
    "female vocal", "oboe", "mellow", "orchestral", "viola", "light", "echo", "piano",
    "celtic", "male vocals", "orchestra", "eastern", "old", "flutes", "punk", "spanish", "sad",
    "sax", "slow", "male", "blues", "vocal", "indian", "no singer", "scary", "india", "woman",
    "woman singing", "rock", "dance", "piano solo", "guitars", "no drums", "jazzy", "singing",
    "cello", "calm", "female vocals", "voices", "different", "techno", "clapping", "house",
    "monks", "flute", "not opera", "not english", "oriental", "beat", "upbeat", "soft",
    "noise", "choir", "female singer", "rap", "metal", "hip hop", "quick", "water", "baroque",
    "women", "fiddle", "english",
)

SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("beat", "beats"),
    ("chant", "chanting"),
    ("choir", "choral"),
    ("classical", "clasical", "classic"),
    ("drum", "drums"),
    ("electro", "electronic", "electronica", "electric"),
    ("fast", "fast beat", "quick"),
    ("female", "female singer", "female singing", "female vocals", "female voice", "woman",
     "woman singing", "women"),
    ("flute", "flutes"),
    ("guitar", "guitars"),
    ("hard", "hard rock"),
    ("harpsichord", "harpsicord"),
    ("heavy", "heavy metal", "metal"),
    ("horn", "horns"),
    ("india", "indian"),
    ("jazz", "jazzy"),
    ("male", "male singer", "male vocal", "male vocals", "male voice", "man", "man singing",
     "men"),
    ("no beat", "no drums"),
    ("no singer", "no singing", "no vocal", "no vocals", "no voice", "no voices",
     "instrumental"),
    ("opera", "operatic"),
    ("orchestra", "orchestral"),
    ("quiet", "silence"),
    ("singer", "singing"),
    ("space", "spacey"),
    ("string", "strings"),
    ("synth", "synthesizer"),
    ("violin", "violins"),
    ("vocal", "vocals", "voice", "voices"),
    ("strange", "weird"),
)

# The top-50 tags of the unmerged vocabulary, as used by every published MTT benchmark
# (Choi et al. 2016; Pons et al. 2018; Won et al. 2020), most frequent first.
TOP50_TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)

assert len(MTT_TAGS) == 188 and len(set(MTT_TAGS)) == 188
assert len(SYNONYMS) == 29
assert set(TOP50_TAGS) <= set(MTT_TAGS)
