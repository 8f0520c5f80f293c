"""Tag names across vocabularies: MagnaTagATune's top-50, the demo's merged names, the Million Song Dataset's top-50.

A model trained on one vocabulary is scored on a corpus labelled in another through `shared_tags`:
each model tag maps onto at most one corpus tag, the first rule that matches deciding:

1. the same name;
2. the same name once normalised (`normalise`: case, and hyphens / underscores / runs of spaces
   as one space: MSD's "Hip-Hop" is MTT's "hip hop");
3. the same concept (`concept`): MagnaTagATune's 29 synonym groups (`pipeline.sources.mtt_tags.SYNONYMS`),
   so that an unmerged MTT model's "female", "woman" and "female voice" all map onto the demo's
   merged "female" (MTT's "female vocal" is in no group and stays itself), plus the few cross-vocabulary equivalences of
   `EQUIVALENT` (MSD's "female vocalists" is MTT's female-voice group). Among several corpus
   tags of the concept, the group's head wins, else the first in the corpus's order.

Several model tags can so map onto one corpus tag; a clip's score for that tag is then the
**maximum** of their probabilities (`combine_columns`): the concept is present when any of its
names is, as merging the labels takes their logical OR. The table below is data only and small
on purpose: an equivalence is listed only where the two names mean the same thing to a listener.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from pipeline.errors import ParameterError
from pipeline.sources.mtt_tags import SYNONYMS, TOP50_TAGS

# musicnn's MTT_LABELS (jordipons/musicnn, the output order of MTT_musicnn and MTT_vgg): the unmerged
# MagnaTagATune top-50, most frequent first.
MTT_TOP50: tuple[str, ...] = TOP50_TAGS

# musicnn's MSD_LABELS (the output order of MSD_musicnn and MSD_vgg): the Last.fm top-50 of the Million
# Song Dataset as Choi et al. 2016 selected them (keunwoochoi/MSD_split_for_tagging), spelled as published.
MSD_TOP50: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
    "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
)

# Cross-vocabulary equivalences (normalised name -> the MTT synonym group's head it means). MSD names
# that are already an MTT tag or synonym ("electronic", "electronica", "electro", "metal", "heavy metal",
# "hard rock", "instrumental", "hip hop", ...) need no entry: rule 2 or the synonym groups match them.
EQUIVALENT: dict[str, str] = {
    "female vocalists": "female",  # MSD: a female lead voice; MTT's female / woman / female vocal group
    "female vocalist": "female",
    "male vocalists": "male",  # MSD: a male lead voice; MTT's male / man / male vocal group
    "male vocalist": "male",
}

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise(name: str) -> str:
    """A tag name compared without case or spelling of separators: "Hip-Hop" and "hip hop" are one."""
    return _SEPARATORS.sub(" ", name.strip().lower()).strip()


# Every synonym, normalised, to its group's head, normalised.
_HEAD: dict[str, str] = {normalise(t): normalise(group[0]) for group in SYNONYMS for t in group}


def concept(name: str) -> str:
    """The concept a tag name stands for: its MTT synonym group's head, an equivalence, or itself (normalised)."""
    n = normalise(name)
    n = EQUIVALENT.get(n, n)
    return _HEAD.get(n, n)


def shared_tags(model_tags: Sequence[str], corpus_tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """The model tags that map onto a corpus tag: ``(model_index, corpus_index, corpus_tag)``, by model index.

    Rules in the module docstring; a model tag maps onto at most one corpus tag, and several
    model tags may map onto the same one (combine their scores with `combine_columns`). Equal
    vocabularies map each tag onto itself.

    Examples
    --------
    >>> shared_tags(["woman", "rock", "techno"], ["female", "rock"])
    [(0, 0, 'female'), (1, 1, 'rock')]
    """
    exact = {t: j for j, t in reversed(list(enumerate(corpus_tags)))}  # the first of a repeated name
    by_name: dict[str, int] = {}
    by_concept: dict[str, int] = {}
    for j, tag in enumerate(corpus_tags):
        by_name.setdefault(normalise(tag), j)
        c = concept(tag)
        # the group's head itself wins over its synonyms; else the first tag of the concept
        if c not in by_concept or (normalise(tag) == c and normalise(corpus_tags[by_concept[c]]) != c):
            by_concept[c] = j
    pairs = []
    for i, tag in enumerate(model_tags):
        j = exact.get(tag)
        if j is None:
            j = by_name.get(normalise(tag))
        if j is None:
            j = by_concept.get(concept(tag))
        if j is not None:
            pairs.append((i, j, corpus_tags[j]))
    return pairs


def combine_columns(targets: Sequence[str], values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Columns of ``values`` that share a target name, combined by their maximum.

    Parameters
    ----------
    targets : the target name of each column [len k] (e.g. the corpus tag each model tag maps onto)
    values : np.ndarray [shape=(n, k)]  probabilities (or 0/1 labels) of the columns

    Returns
    -------
    names : the distinct targets, in the order they first appear
    combined : np.ndarray [shape=(n, len(names)), dtype=values.dtype]

    Examples
    --------
    >>> combine_columns(["female", "female", "rock"], np.array([[0.2, 0.7, 0.1]]))[1].tolist()
    [[0.7, 0.1]]
    """
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != len(targets):
        raise ParameterError(f"values must be (n, {len(targets)}) for {len(targets)} targets, got {values.shape}")
    names = list(dict.fromkeys(targets))
    out = np.empty((values.shape[0], len(names)), dtype=values.dtype)
    index = np.asarray([names.index(t) for t in targets], dtype=np.int64)
    for j in range(len(names)):
        out[:, j] = values[:, index == j].max(axis=1)
    return names, out
