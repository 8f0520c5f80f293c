"""Tag names across vocabularies: MTT's unmerged top-50, the demo's merged heads, the MSD top-50."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ParameterError
from pipeline.sources.labels import merge_synonyms
from pipeline.sources.mtt_tags import MTT_TAGS, SYNONYMS
from pipeline.sources.vocab import MSD_TOP50, MTT_TOP50, combine_columns, concept, normalise, shared_tags

# musicnn's MTT_LABELS, as jordipons/musicnn and musicnn-training (output_labels_mtt.txt) publish them.
MUSICNN_MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral"]


def _mapped(model: list[str] | tuple[str, ...], corpus: list[str] | tuple[str, ...]) -> dict[str, str]:
    return {model[i]: name for i, j, name in shared_tags(model, corpus) if corpus[j] == name}


def test_vocabularies_are_the_published_ones() -> None:
    assert list(MTT_TOP50) == MUSICNN_MTT_LABELS
    assert len(MSD_TOP50) == len(set(MSD_TOP50)) == 50
    assert MSD_TOP50[:3] == ("rock", "pop", "alternative") and MSD_TOP50[-1] == "happy"


def test_normalise_and_concept() -> None:
    assert normalise("  Hip-Hop ") == normalise("hip_hop") == normalise("hip  hop") == "hip hop"
    assert normalise("Progressive rock") == "progressive rock"
    assert {concept(t) for t in ("female", "woman", "Female Voice", "female vocalists")} == {"female"}
    assert concept("female vocal") == "female vocal"  # not in MTT's female group (its "female vocals" is)
    assert concept("electronica") == concept("electronic") == concept("Electro") == "electro"
    assert concept("classic rock") == "classic rock"  # a genre, not MTT's "classic" (classical)
    assert concept("techno") == "techno"


def test_equal_vocabularies_map_onto_themselves() -> None:
    for vocab in (MTT_TOP50, MSD_TOP50, MTT_TAGS):
        assert shared_tags(vocab, vocab) == [(i, i, t) for i, t in enumerate(vocab)]


def test_unmerged_mtt_model_on_the_demos_merged_heads() -> None:
    # The demo's vocabulary is MTT's 188 tags with the 29 synonym groups folded into their heads.
    merged, _ = merge_synonyms(list(MTT_TAGS), np.zeros((1, len(MTT_TAGS)), np.uint8))
    pairs = shared_tags(MTT_TOP50, merged)
    mapped = {MTT_TOP50[i]: name for i, _, name in pairs}
    assert len(pairs) == 50  # every MTT tag has its head among the 188 merged
    for names, head in [(("female", "woman", "female voice"), "female"), (("female vocal",), "female vocal"),
                        (("male", "man", "male vocal", "male voice"), "male"),
                        (("no vocals", "no vocal", "no voice"), "no singer"),
                        (("vocal", "vocals", "voice"), "vocal"), (("classical", "classic"), "classical"),
                        (("beat", "beats"), "beat"), (("choir", "choral"), "choir"), (("electronic",), "electro"),
                        (("drums",), "drum"), (("strings",), "string"), (("weird",), "strange"),
                        (("metal",), "heavy"), (("indian",), "india"), (("singing",), "singer"),
                        (("techno",), "techno"), (("guitar",), "guitar")]:
        assert {mapped[n] for n in names} == {head}, names
    assert all(merged[j] == name for _, j, name in pairs)


def test_merged_model_on_unmerged_corpus_prefers_the_head() -> None:
    # A demo-trained model's "female" scores MTT's "female" column, not its first synonym.
    corpus = ["woman", "female vocal", "female", "rock"]
    assert shared_tags(["female", "electro", "rock"], corpus) == [(0, 2, "female"), (2, 3, "rock")]
    assert shared_tags(["female"], ["woman", "female vocal"]) == [(0, 0, "woman")]  # no head: the first


def test_msd_and_mtt_share_their_common_concepts() -> None:
    msd_on_mtt = _mapped(MSD_TOP50, MTT_TOP50)
    assert msd_on_mtt == {
        "rock": "rock", "pop": "pop", "electronic": "electronic", "female vocalists": "female", "dance": "dance",
        "metal": "metal", "male vocalists": "male", "electronica": "electronic", "instrumental": "no vocals",
        "ambient": "ambient", "female vocalist": "female", "guitar": "guitar", "country": "country",
        "electro": "electronic", "heavy metal": "metal"}
    mtt_on_msd = _mapped(MTT_TOP50, MSD_TOP50)
    assert mtt_on_msd["woman"] == mtt_on_msd["female voice"] == "female vocalists"
    assert mtt_on_msd["man"] == "male vocalists" and mtt_on_msd["no voice"] == "instrumental"
    assert mtt_on_msd["electronic"] == "electronic" and "classical" not in mtt_on_msd and "techno" not in mtt_on_msd
    assert _mapped(["hip hop", "house"], MSD_TOP50) == {"hip hop": "Hip-Hop", "house": "House"}


def test_exact_name_wins_over_a_normalised_one() -> None:
    assert shared_tags(["Rock", "rock"], ["rock", "Rock"]) == [(0, 1, "Rock"), (1, 0, "rock")]
    assert shared_tags(["ROCK"], ["rock", "Rock"]) == [(0, 0, "rock")]
    assert shared_tags(["jazz"], ["rock"]) == [] and shared_tags([], ["rock"]) == []


def test_every_synonym_group_maps_onto_its_head() -> None:
    heads = [g[0] for g in SYNONYMS]
    for group in SYNONYMS:
        assert [name for _, _, name in shared_tags(list(group), heads)] == [group[0]] * len(group)


def test_combine_columns_takes_the_maximum() -> None:
    values = np.array([[0.2, 0.7, 0.1, 0.0], [0.9, 0.3, 0.4, 1.0]], dtype=np.float32)
    names, combined = combine_columns(["female", "female", "rock", "female"], values)
    assert names == ["female", "rock"] and combined.dtype == np.float32
    assert combined.tolist() == [[pytest.approx(0.7), pytest.approx(0.1)], [1.0, pytest.approx(0.4)]]
    truth = np.array([[1, 1, 0], [0, 0, 1]], dtype=np.uint8)
    assert combine_columns(["a", "a", "b"], truth)[1].tolist() == [[1, 0], [0, 1]]
    assert combine_columns(["a"], np.zeros((0, 1)))[1].shape == (0, 1)
    with pytest.raises(ParameterError, match=r"values must be \(n, 2\)"):
        combine_columns(["a", "b"], values)
