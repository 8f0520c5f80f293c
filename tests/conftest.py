"""Shared fixtures: the real-audio fixtures and one real tiny run shared by the whole session."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "fixtures" / "real-audio"
TINY_MODEL = "musicnn"  # narrowed: its own taggram frames are 0.256 s apart


# Two xdist workers share two cores: each worker's torch / BLAS / ONNX Runtime runs one thread,
# so they do not oversubscribe the cores (tests that set threads themselves still do).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


def xdist_worker() -> str | None:
    """The pytest-xdist worker this process is (``gw0``, ``gw1``, ...), or None when not distributed."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def session_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, AbstractContextManager]:
    """Where a session-wide build goes, and the lock to hold while building or completing it.

    Alone, a folder of this session's temp root and no lock. Under pytest-xdist, a folder shared
    by every worker of the session (the parent of their temp roots) and a file lock on it, so a
    corpus or a trained run is built once for the whole session, not once per worker.
    """
    if xdist_worker() is None:
        return tmp_path_factory.getbasetemp() / name, nullcontext()
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / name
    return root, FileLock(f"{root}.lock")


def shared_build(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per session (see `session_dir`); ``build`` must be idempotent."""
    folder, lock = session_dir(tmp_path_factory, name)
    with lock:
        return build(folder)


@pytest.fixture(scope="session", autouse=True)
def private_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root of the session's own ($MUSICTAG_DATA), so feature caches never land in data/.

    The converted published models stay where the install step put them ($MUSICTAG_PRETRAINED
    is pinned there). Subprocesses started by tests inherit both.
    """
    from pipeline.paths import PRETRAINED_ENV, pretrained_root

    root = tmp_path_factory.getbasetemp() / "data-root"
    patch = pytest.MonkeyPatch()
    patch.setenv(PRETRAINED_ENV, str(pretrained_root()))
    patch.setenv("MUSICTAG_DATA", str(root))
    yield root
    patch.undo()


@pytest.fixture(params=["compiled", "numpy"])
def feature_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a features test twice: with the compiled kernels (``make install`` builds them) and with numpy alone."""
    import pipeline.features.kernels as kernels

    if request.param == "numpy":
        monkeypatch.setattr(kernels, "load", lambda: None)
    elif kernels.load() is None:
        pytest.skip("the compiled feature kernels are not built: run `make install` "
                    "(or `python -m pipeline.features.kernels`)")
    return request.param


@pytest.fixture(scope="session")
def real_audio() -> dict[str, Path]:
    """The two real mp3s in ../shared (an MTT clip and an MSD preview); skip when absent."""
    files = {
        "mtt": SHARED_AUDIO / "joram-moments_of_clarity-08-solipsism-59-88.mp3",
        "msd": SHARED_AUDIO / "TRWJAZW128F42760DD_test.mp3",
    }
    if not all(p.is_file() for p in files.values()):
        pytest.skip(f"real-audio fixtures not found in {SHARED_AUDIO}")
    return files


@pytest.fixture(scope="session")
def demo_corpus_48(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo corpus of 48 clips x 4 s, seed 0 (36 train / 3 valid / 9 test), built once per session.

    Shared by test_train and test_evaluate (and their feature caches under the session's data
    root); tests only read it and write their runs elsewhere.
    """
    from pipeline.sources.demo import build_demo_corpus

    return shared_build(tmp_path_factory, "demo48", lambda base: build_demo_corpus(
        base / "corpus", clips=48, seconds=4.0, seed=0, workers=2, progress=False))


def build_tiny_run(base: Path) -> Path:
    """A demo corpus of 40 clips x 3.5 s, a narrow musicnn trained one epoch, and its score stage.

    Idempotent: every stage reuses what an earlier call built.
    """
    import torch

    from pipeline.run.rundir import RunDir
    from pipeline.scoring.score import score_run
    from pipeline.sources.demo import build_demo_corpus
    from pipeline.training.config import TrainConfig
    from pipeline.training.train import train

    torch.set_num_threads(1)
    corpus = build_demo_corpus(base / "corpus", clips=40, seconds=3.5, seed=0, workers=2, progress=False)
    run = base / "run"
    if not RunDir(run).stage_done("train"):
        config = TrainConfig.from_overrides(model=TINY_MODEL, model_kwargs={"width": 0.125}, epochs=1, batch_size=8, top_n=20,
                                            seed=0)
        train(config, corpus, run, force=True, progress=False)
    score_run(run, progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trained run with its score stage (built once per session): train -> score.

    Under pytest-xdist it is completed to `demo_run` at once, inside the lock: `demo_run` adds its
    stages to this same folder, which must not happen while another worker's tests read it.
    """
    def build(base: Path) -> Path:
        run = build_tiny_run(base)
        return complete_demo_run(run) if xdist_worker() is not None else run

    return shared_build(tmp_path_factory, "tiny_run", build)


def complete_demo_run(run: Path) -> Path:
    """Add the evaluate and embed stages to a scored run (idempotent)."""
    from pipeline.analysis.embed import EmbedConfig, run_embed
    from pipeline.analysis.evaluate import evaluate_run
    from pipeline.run.rundir import RunDir

    if not RunDir(run).stage_done("evaluate"):
        evaluate_run(run, n_bootstrap=50, progress=False)
    run_embed(run, EmbedConfig(neighbors=5), progress=False)
    return run


@pytest.fixture(scope="session")
def demo_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run with every stage complete, in data-flow order: train -> score -> evaluate -> embed."""
    return shared_build(tmp_path_factory, "tiny_run", lambda base: complete_demo_run(tiny_run))
