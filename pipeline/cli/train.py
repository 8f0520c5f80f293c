"""``python -m pipeline train``: train a tagger into a run directory."""

from __future__ import annotations

import argparse
import ast
import sys
import textwrap
from pathlib import Path
from typing import Any

from pipeline.errors import ParameterError

EPILOG = """\
examples:
  python -m pipeline train --corpus data/demo --demo                 the default demo model and settings
  python -m pipeline train --corpus data/demo --model musicnn --model-arg width=0.25 --epochs 8
  python -m pipeline train --corpus data/mtt --model shortchunk_res --no-synonyms --epochs 200 --batch-size 16 \\
      --optimizer adam_sgd --lr 1e-4 --weight-decay 1e-4 --sgd-after 80 --sgd-lr 1e-3 --milestones 100 120 \\
      --out data/runs/mtt_shortchunk_res                     (Won et al. 2020's recipe, on a GPU)
  python -m pipeline train --corpus data/mine --from data/runs/musicnn --transfer last:2 --out data/runs/mine
                                          (fine-tune a run's last 2 blocks on your folder and its tags CSV)
  python -m pipeline train --corpus data/mine --from mtt_musicnn --transfer features   (a pretrained run, frozen)
  torchrun --nproc_per_node=2 -m pipeline train --corpus data/demo --model fcn   (DistributedDataParallel)
  python -m pipeline train --out data/runs/musicnn --resume                      (continue after a kill)
"""


def _bool_or_none(text: str) -> bool | None:
    value = {"auto": None, "true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
        text.lower(), "bad")
    if value == "bad":
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {text!r}")
    return value  # type: ignore[return-value]


def _int_or_none(text: str) -> int | None:
    if text.lower() in ("none", "all"):  # 0 is not a number of tags: TrainConfig rejects it
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def _model_arg(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare word, e.g. rnn=lstm
    return key.strip().replace("-", "_"), value


def build_parser() -> argparse.ArgumentParser:
    from pipeline.features.extract import NORMALIZER_MODES
    from pipeline.run import rundir as rd
    from pipeline.training.config import (
        ALL_BACKBONE_LR_MULT,
        BASELINES,
        OPTIMIZERS,
        POS_WEIGHTS,
        PRECISIONS,
        SCHEDULES,
        TrainConfig,
    )

    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m pipeline train",
        description=textwrap.fill(
            "Train a tagger (a CNN from the model zoo, or a classical baseline) on a corpus and write a run "
            f"directory: {rd.CHECKPOINT} (best validation ROC-AUC), {rd.LAST_CHECKPOINT}, {rd.HISTORY}, {rd.MANIFEST}. "
            "Every option not given keeps the default shown; --demo starts from the default demo settings.", 79),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS)  # an option not given is absent: the config's default holds
    g = p.add_argument_group("run")
    g.add_argument("--corpus", type=Path, help="corpus folder (MTT format: real MagnaTagATune or the demo; or a "
                   "folder of audio with a tags CSV); optional with --resume")
    g.add_argument("--out", type=Path, help="run directory to write (default: data/runs/<model>)")
    g.add_argument("--resume", action="store_true", help=f"continue an unfinished run from its {rd.LAST_CHECKPOINT}, with its "
                   "saved settings (a finished run is left as it is)")
    g.add_argument("--force", action="store_true", help="replace a finished or unfinished run in --out")
    g.add_argument("--demo", action="store_true", help="start from the default demo settings "
                   "(pipeline.training.config.demo_train_config: the default model with its CPU recipe)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")

    g = p.add_argument_group("model")
    g.add_argument("--model", help=f"model name from the zoo or a baseline ({', '.join(BASELINES)}); "
                   f"default {d.model} (with --init-from: the source run's model); see --list-models")
    g.add_argument("--model-arg", dest="model_args", action="append", type=_model_arg,
                   metavar="KEY=VALUE", help="a model constructor option, repeatable (e.g. width=0.5, rnn=lstm, "
                   "channels=[32,64]); the models' docstrings list them")
    g.add_argument("--list-models", action="store_true", help="print the registered models and baselines, then exit")

    g = p.add_argument_group("features")
    g.add_argument("--n-mels", type=int, help="mel bins (default: the model's own, 96 or 128)")
    g.add_argument("--sample-rate", type=int, help=f"audio sample rate in Hz (default {d.features.sample_rate})")
    g.add_argument("--n-fft", type=int, help=f"STFT window in samples (default {d.features.n_fft})")
    g.add_argument("--hop-length", type=int, help=f"STFT hop in samples (default {d.features.hop_length})")
    g.add_argument("--normalization", choices=NORMALIZER_MODES, help="feature normalisation: per_bin / global "
                   "statistics of the training split, per_spec (each chunk by itself) or none "
                   f"(default {d.normalization})")
    g.add_argument("--chunk-seconds", type=float, help="training chunk length in seconds (default: the model's "
                   "own chunk; clips are cut into chunks of it and aggregated at evaluation)")
    g.add_argument("--cache-root", type=Path, help="where feature caches live (default: the cache's own default)")

    g = p.add_argument_group("labels")
    g.add_argument("--synonyms", dest="merge_synonyms", type=_bool_or_none, metavar="auto|true|false",
                   help="merge MTT's 29 synonym groups (default auto: on for the demo corpus only; MagnaTagATune "
                   "keeps the literature's unmerged top-50)")
    g.add_argument("--merge-synonyms", dest="merge_synonyms", action="store_const", const=True,
                   help="merge the synonym groups (--synonyms true)")
    g.add_argument("--no-synonyms", dest="merge_synonyms", action="store_const", const=False,
                   help="keep synonyms apart (top-50 unmerged tags, as the published MTT results use)")
    g.add_argument("--top-n", type=_int_or_none, metavar="N|all", help=f"keep the N most frequent tags "
                   f"(default {d.labels.top_n}; 'all' keeps every tag)")
    g.add_argument("--drop-untagged", dest="drop_untagged", action="store_const", const=True,
                   help="drop clips left without any tag after top-N (the default for MagnaTagATune, as in "
                   "Won et al. 2020's split)")
    g.add_argument("--keep-untagged", dest="drop_untagged", action="store_const", const=False,
                   help="keep clips without any top-N tag, as negatives of every tag (the default for the demo and "
                   "folders; musicnn's published MTT split keeps them too)")
    g.add_argument("--split", nargs="+", metavar="MODE|FILE", help="auto (MTT folders for MTT-format corpora, else "
                   "random) | folder | random | split file(s) or a folder of them: a split CSV (clip_id, split), "
                   "Won et al.'s train / valid / test .npy lists (sota-music-tagging-models split/mtat), musicnn's "
                   "{train,val,test}_gt_mtt.tsv with index_mtt.tsv")
    g.add_argument("--corrections", type=Path, metavar="FILE", help="a verdicts CSV (python -m pipeline review "
                   "export): the reviewers' consensus corrects the labels after label processing (top-N, split), "
                   "before training; the manifest records which verdicts (default: the annotations as they are)")
    g.add_argument("--split-seed", type=int, help=f"seed of a random split (default {d.labels.seed})")
    g.add_argument("--ratios", type=float, nargs=3, metavar=("TRAIN", "VALID", "TEST"),
                   help=f"shares of a random split (default {' '.join(map(str, d.labels.ratios))})")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help=f"epochs (default {d.epochs})")
    g.add_argument("--batch-size", type=int, help=f"examples per batch, per process (default {d.batch_size})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="adam, sgd (Nesterov momentum), or adam_sgd: Adam for "
                   "--sgd-after epochs, then SGD at --sgd-lr from the best checkpoint (Won et al. 2020) "
                   f"(default {d.optimizer})")
    g.add_argument("--lr", type=float, help=f"learning rate (of the Adam phase in adam_sgd) (default {d.lr})")
    g.add_argument("--weight-decay", type=float, help=f"L2 weight decay (default {d.weight_decay})")
    g.add_argument("--momentum", type=float, help=f"SGD's Nesterov momentum (default {d.momentum})")
    g.add_argument("--sgd-after", type=int, help=f"adam_sgd: epochs of Adam before SGD (default {d.sgd_after})")
    g.add_argument("--sgd-lr", type=float, help=f"adam_sgd: learning rate of the SGD phase (default {d.sgd_lr})")
    g.add_argument("--schedule", choices=SCHEDULES, help=f"learning-rate schedule: step (times --gamma after each "
                   f"milestone), cosine (to 0 at the last epoch) or none (default {d.schedule})")
    g.add_argument("--milestones", type=int, nargs="+", metavar="EPOCH",
                   help=f"epochs after which the step schedule decays (default {' '.join(map(str, d.milestones))})")
    g.add_argument("--gamma", type=float, help=f"decay factor of the step schedule (default {d.gamma})")
    g.add_argument("--pos-weight", choices=POS_WEIGHTS, help="weight positives of each tag in the loss: none, "
                   "balanced (negatives/positives) or sqrt (its square root) -- the NYU fix for rare tags "
                   f"(default {d.pos_weight})")
    g.add_argument("--max-pos-weight", type=float, help=f"cap on a tag's positive weight (default {d.max_pos_weight})")
    g.add_argument("--patience", type=int, help="early stopping: stop after this many epochs without a better "
                   "validation macro ROC-AUC (default: never)")
    g.add_argument("--max-minutes", type=float, help="time budget of the whole run in minutes; training stops "
                   "after the batch that exceeds it, validates and saves (default: none)")

    g = p.add_argument_group("transfer learning")
    g.add_argument("--from", "--init-from", dest="init_from", metavar="RUN",
                   help="start from another run's network (its run directory, a .pt file, or a pretrained run's "
                   "name); its model, features and normaliser are used, the output layer is rebuilt for this "
                   "corpus's tags (without --transfer, rows of tags the two share are copied)")
    g.add_argument("--transfer", metavar="features|last:K|all", help="with --from, what trains: features (the "
                   "network frozen, a new output layer trained on its embeddings, computed once), last:K (the last "
                   "K blocks and the output layer; the rest frozen, batch-norm statistics too) or all (every layer, "
                   f"the backbone at --backbone-lr-mult, default {ALL_BACKBONE_LR_MULT} here); the output layer is "
                   "new for this corpus's tags")
    g.add_argument("--freeze-blocks", type=int, help="freeze the first K blocks of the network (parameters and "
                   "batch-norm statistics) (default 0; not with --transfer)")
    g.add_argument("--backbone-lr-mult", "--backbone-lr-scale", dest="backbone_lr_mult", type=float,
                   help="learning rate of every layer but the output layer, relative to --lr (default "
                   f"{ALL_BACKBONE_LR_MULT} with --transfer all, else 1)")

    g = p.add_argument_group("execution")
    g.add_argument("--seed", type=int, help=f"seed of weights, data order, crops and dropout (default {d.seed})")
    g.add_argument("--workers", type=int, help="data-loader worker processes (default: auto, 0 on <= 2 cores); "
                   "also the feature cache's workers")
    g.add_argument("--device", help="auto (CUDA, else Apple MPS, else CPU) | cpu | cuda | cuda:N | mps "
                   f"(default {d.device})")
    g.add_argument("--precision", choices=PRECISIONS, help="auto: bf16 autocast on CUDA "
                   "GPUs that support it, else fp16 with gradient scaling; fp32 on CPU and MPS (default auto)")
    g.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                   help="allow non-deterministic (faster) cuDNN kernels on CUDA")
    g.add_argument("--tensorboard", action="store_true",
                   help=f"also log to <out>/{rd.TENSORBOARD} (needs the tensorboard package)")
    return p


# CLI destinations that are not TrainConfig fields
_NOT_CONFIG = {"corpus", "out", "resume", "force", "demo", "no_progress", "model_args", "list_models"}


def config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig an argument namespace asks for (the options given override the base).

    Feature and label flags (``--sample-rate``, ``--top-n``, ``--split-seed``, ...) are the flat
    names of `TrainConfig.from_overrides`, which sets them in the nested configs.
    """
    from pipeline.training.config import TrainConfig, demo_train_config

    given = vars(args)
    base = demo_train_config() if given.get("demo") else TrainConfig()
    if given.get("demo") and given.get("init_from"):  # the source's input and size hold, the recipe's optimisation
        base = TrainConfig.from_overrides(base, n_mels=None, chunk_seconds=None, model_kwargs={})
    overrides = {k: v for k, v in given.items() if k not in _NOT_CONFIG}
    for name in ("cache_root", "corrections"):
        if name in overrides:
            overrides[name] = str(overrides[name])
    if "split" in overrides and len(overrides["split"]) == 1:  # one mode or one split file
        overrides["split"] = overrides["split"][0]
    model = given.get("model")
    if given.get("model_args"):
        kwargs = dict(base.model_kwargs) if model is None or model == base.model else {}
        kwargs.update(dict(given["model_args"]))
        overrides["model_kwargs"] = kwargs
    elif model is not None and model != base.model:
        overrides["model_kwargs"] = {}  # the demo's width belongs to the demo's model
    if given.get("init_from") and model is None:
        from pipeline.training.checkpoints import load_source_checkpoint

        overrides["model"] = load_source_checkpoint(given["init_from"])["model_name"]
        overrides.setdefault("model_kwargs", {})
    return TrainConfig.from_overrides(base, **overrides)


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = vars(args)
    if given.get("list_models"):
        from models.registry import list_models
        from pipeline.training.config import BASELINES

        print("models:    " + ", ".join(list_models()))
        print("baselines: " + ", ".join(BASELINES))
        return 0
    corpus, resume = given.get("corpus"), given.get("resume", False)
    if corpus is None and not resume:
        parser.error("--corpus is required (unless --resume)")
    if corpus is not None and not corpus.is_dir():
        raise ParameterError(f"--corpus: no such folder: {corpus}")
    if given.get("corrections") is not None and not given["corrections"].is_file():
        raise ParameterError(f"--corrections: no such file: {given['corrections']}")
    from pipeline.training.train import train

    config = config_from_args(args)
    out = train(config, corpus, given.get("out"), resume=resume, force=given.get("force", False),
                progress=not given.get("no_progress", False) and sys.stderr.isatty(),
                suggest_recipe=not given.get("demo", False))  # --demo asked for the CPU recipe already
    from pipeline.device import dist_env

    if dist_env().is_main:
        print(f"trained run: {out}\nnext: python -m pipeline evaluate {out}")
    return 0
