"""A run scored and evaluated on a corpus whose tag vocabulary differs from the model's.

`score RUN --corpus DIR --out NEW` maps the model's tags onto the corpus's (`pipeline.sources.vocab`);
evaluate reports the corpus's tags, each from the mapped model column(s), several combined by maximum.
The expected AUCs here are computed directly from the stored probabilities and the corpus's labels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.run.rundir import PER_TAG, PREDICTIONS, RunDir, prob_column, true_column
from pipeline.sources.corpus import LabelConfig
from pipeline.sources.loader import load_corpus
from pipeline.sources.vocab import shared_tags

# A listener's other spellings of the demo's merged heads (MSD's names among them).
RENAMED = {"female": "Female Vocalists", "male": "male vocalists", "electro": "Electronica", "drum": "drums",
           "classical": "classic", "heavy": "Heavy-Metal", "no singer": "instrumental", "strange": "weird"}


def _aucs_by_hand(frame: pd.DataFrame, truth: np.ndarray, corpus_tags: list[str],
                  model_tags: list[str]) -> dict[str, float]:
    """Per corpus tag: ROC-AUC of the max over the model columns mapped onto it, against the corpus labels."""
    groups: dict[int, list[str]] = {}
    for i, j, _ in shared_tags(model_tags, corpus_tags):
        groups.setdefault(j, []).append(model_tags[i])
    out = {}
    for j, members in groups.items():
        y = truth[:, j]
        if 0 < y.sum() < len(y):
            score = frame[[prob_column(t) for t in members]].to_numpy().max(axis=1)
            out[corpus_tags[j]] = float(roc_auc_score(y, score))
    return out


def _evaluated(run: Path, split: str) -> dict[str, float]:
    from pipeline.analysis.evaluate import evaluate_run

    evaluate_run(run, split=split, n_bootstrap=0, progress=False)
    table = pd.read_csv(run / PER_TAG)
    return {t: float(a) for t, a in zip(table["tag"], table["roc_auc"]) if not np.isnan(a)}


@pytest.fixture(scope="module")
def renamed_corpus(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 of the tiny run's demo clips as a folder, tagged with other names for the model's tags."""
    corpus = load_corpus(tiny_run.parent / "corpus")
    root = tmp_path_factory.mktemp("renamed") / "mine"
    root.mkdir()
    lines = ["path,tags"]
    for i in range(24):
        shutil.copyfile(corpus.audio_path(i), root / f"clip{i:02d}.mp3")
        names = [RENAMED.get(t, t.upper()) for t in corpus.tags if corpus.labels[i, corpus.tags.index(t)]]
        lines.append(f'clip{i:02d}.mp3,"{";".join(names)}"')
    (root / "tags.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_renamed_vocabulary_is_scored_on_the_mapped_columns(tiny_run: Path, renamed_corpus: Path,
                                                            tmp_path: Path) -> None:
    from pipeline.scoring.score import score_run

    out = tmp_path / "renamed-run"
    entry = score_run(tiny_run, corpus_dir=renamed_corpus, out_dir=out, progress=False)
    model_tags = RunDir(tiny_run).manifest()["tags"]
    corpus = load_corpus(renamed_corpus, LabelConfig(top_n=None, drop_untagged=False))
    # every model tag present in the folder under another spelling is labelled, mapped onto that spelling
    assert entry["tag_map"] == {t: RENAMED.get(t, t.upper()) for t in entry["labelled_tags"]}
    assert set(RENAMED) & set(model_tags) <= set(entry["tag_map"]) and len(entry["tag_map"]) >= 10
    frame = pd.read_parquet(out / PREDICTIONS)
    for model_tag, corpus_tag in entry["tag_map"].items():  # true:<model tag> is the corpus column it maps onto
        rows = [corpus.clip_ids.index(c) for c in frame["clip_id"]]
        assert frame[true_column(model_tag)].tolist() == corpus.labels[rows, corpus.tags.index(corpus_tag)].tolist()
    evaluated = _evaluated(out, "train")
    train = frame["split"] == "train"
    rows = [corpus.clip_ids.index(c) for c in frame["clip_id"][train]]
    expected = _aucs_by_hand(frame[train], corpus.labels[rows], corpus.tags, model_tags)
    assert evaluated.keys() == expected.keys() and len(expected) >= 5
    assert all(t in set(RENAMED.values()) or t.isupper() for t in evaluated)  # the corpus's names
    for tag, auc in expected.items():
        assert evaluated[tag] == pytest.approx(auc, abs=1e-6), tag


def test_unmerged_model_on_the_merged_demo_combines_synonyms_by_maximum(tiny_run: Path, tmp_path: Path) -> None:
    """musicnn's case in miniature: a model of unmerged MTT tags scored on the demo's merged heads."""
    from pipeline.scoring.score import score_run
    from pipeline.training.config import TrainConfig
    from pipeline.training.train import train

    demo_dir = tiny_run.parent / "corpus"
    unmerged = train(TrainConfig.from_overrides(model="musicnn", model_kwargs={"width": 0.125}, epochs=1,
                                                batch_size=8, top_n=40, merge_synonyms=False, seed=0),
                     demo_dir, tmp_path / "unmerged", force=True, progress=False)
    model_tags = RunDir(unmerged).manifest()["tags"]
    demo = load_corpus(demo_dir, LabelConfig(top_n=None))  # as score --corpus loads it: every merged head
    assert demo.demo and demo.label_config.merge_synonyms
    groups: dict[str, list[str]] = {}
    for i, _, name in shared_tags(model_tags, demo.tags):
        groups.setdefault(name, []).append(model_tags[i])
    combined = {k: v for k, v in groups.items() if len(v) > 1}
    assert combined, f"the unmerged top-40 {model_tags} holds no two spellings of one concept"

    out = tmp_path / "on-demo"
    entry = score_run(unmerged, corpus_dir=demo_dir, out_dir=out, progress=False)
    assert {m: c for m, c in entry["tag_map"].items() if m != c} == {
        m: c for c, ms in groups.items() for m in ms if m != c}
    evaluated = _evaluated(out, "train")
    frame = pd.read_parquet(out / PREDICTIONS)
    train_rows = frame["split"] == "train"
    rows = [demo.clip_ids.index(c) for c in frame["clip_id"][train_rows]]
    expected = _aucs_by_hand(frame[train_rows], demo.labels[rows], demo.tags, model_tags)
    assert evaluated.keys() == expected.keys()
    assert set(combined) & set(expected), "no combined tag has positives and negatives in the train split"
    for tag, auc in expected.items():
        assert evaluated[tag] == pytest.approx(auc, abs=1e-6), tag
    assert not set(m for ms in combined.values() for m in ms if m not in combined) & set(evaluated)
    # embed scores its label issues against the demo's truth.csv through the same map
    from pipeline.analysis.embed import EmbedConfig, run_embed

    issues = run_embed(out, EmbedConfig(neighbors=3), progress=False)["issues"]
    assert RunDir(out).stage_done("embed") and "truth" in issues
