"""Sources: every dataset becomes one `corpus.Corpus`.

In the order the data flows: `corpus` (the types: `RawAnnotations`, `LabelConfig`, `Corpus`,
and what a run records of a corpus), the readers of raw annotations (`mtt_format` for
MagnaTagATune's files, also the demo's; `folder` for a user's folder of audio), `labels`
(synonyms, top-N, untagged clips, splits, the published split files), and `loader`
(`load_corpus`: detect the source, read, process). Building corpora: `mtt` (download
MagnaTagATune, with `download`) and `demo` (synthesize the demo corpus). Facts about
MagnaTagATune: `mtt_tags` (the vocabulary) and `mtt_format` (files, audio folders, sample rate,
folder split). `vocab` maps tag names across vocabularies (MTT's top-50, the demo's merged
heads, the MSD top-50), for scoring a model on a corpus labelled in other words.
"""

# The audio formats a corpus may hold (libsndfile decodes all four). Kept here, importing nothing,
# so the torch- and pandas-free tagging path can check a file's suffix.
AUDIO_EXTENSIONS: frozenset[str] = frozenset({".mp3", ".wav", ".flac", ".ogg"})
