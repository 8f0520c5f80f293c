"""The model zoo: every registered model honours the Tagger contract at small widths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.base import InputSpec, Tagger, register_model
from models.blocks import max_pool1d_safe, max_pool2d_safe
from models.registry import default_model, get_model, get_model_info, list_models, model_spec, small_kwargs
from pipeline.errors import ParameterError

N_TAGS = 5
BATCH = 3
EXPECTED = {"fcn", "fcn4", "multiscale", "musicnn", "shortchunk_res", "samplecnn", "crnn", "vgg"}


def _small(name: str, **kwargs) -> Tagger:
    torch.manual_seed(0)
    return get_model(name, n_tags=N_TAGS, **{**small_kwargs(name), **kwargs})


def _batch(spec: InputSpec, frames: int, *, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, spec.n_bins, frames, generator=gen)


def test_zoo_registers_every_architecture() -> None:
    assert set(list_models()) == EXPECTED
    for name in EXPECTED:
        info = get_model_info(name)
        assert info.name == name and info.small and info.cpu_recipe, name
        assert isinstance(get_model(name, n_tags=2, **small_kwargs(name)), Tagger)
    assert default_model() == "shortchunk_res"


def test_every_cpu_recipe_is_a_valid_training_config() -> None:
    from pipeline.training.config import CPU_RECIPE, demo_train_config, recipe_config
    from pipeline.training.resolve import resolve_model_input

    for name in EXPECTED:
        config = recipe_config(name, epochs=2)
        assert config.model == name and config.epochs == 2
        assert config.model_kwargs == get_model_info(name).cpu_recipe["model_kwargs"]
        resolve_model_input(config)  # the model accepts its recipe's options and input
    assert recipe_config("crnn").chunk_seconds == 6.0 and recipe_config("fcn").chunk_seconds == CPU_RECIPE["chunk_seconds"]
    assert demo_train_config() == recipe_config(default_model())
    assert recipe_config("rf").model == "rf"  # a baseline: its defaults
    with pytest.raises(ParameterError, match="known models"):
        recipe_config("nope")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_at_chunk_longer_and_shorter_input(name: str) -> None:
    model = _small(name)
    spec = model.spec
    assert spec.kind in {"logmel", "waveform"}
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.in_features == model.embedding_dim
    assert model.classifier.out_features == N_TAGS
    model.eval()
    with torch.no_grad():
        for frames in (spec.chunk_frames, 2 * spec.chunk_frames + 7, spec.chunk_frames // 2):
            x = _batch(spec, frames)
            logits = model(x)
            assert logits.shape == (BATCH, N_TAGS), frames
            assert torch.isfinite(logits).all()
            emb = model.embed(x)
            assert emb.shape == (BATCH, model.embedding_dim)
            # forward is the classifier on the embedding, with no sigmoid in between
            torch.testing.assert_close(model.classifier(emb), logits)
            taggram = model.frame_logits(x)
            assert taggram.dim() == 3 and taggram.shape[0] == BATCH and taggram.shape[2] == N_TAGS
            assert taggram.shape[1] >= 1
            assert torch.isfinite(taggram).all()


@pytest.mark.parametrize("name", sorted(EXPECTED - {"samplecnn"}))
def test_taggram_resolution_grows_with_input_length(name: str) -> None:
    # every spectrogram model keeps a time axis to its end, so a whole clip gives several frames
    model = _small(name).eval()
    with torch.no_grad():
        short = model.frame_logits(_batch(model.spec, model.spec.chunk_frames)).shape[1]
        long = model.frame_logits(_batch(model.spec, 3 * model.spec.chunk_frames)).shape[1]
    assert long >= 2
    assert long > short


def test_samplecnn_takes_waveforms() -> None:
    model = _small("samplecnn").eval()
    assert model.spec == InputSpec("waveform", 1, 3**10)
    with torch.no_grad():
        assert model.frame_logits(_batch(model.spec, 4 * 3**10)).shape == (BATCH, 4, N_TAGS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_training_step_reaches_every_parameter_and_lowers_the_loss(name: str) -> None:
    model = _small(name).train()
    x = _batch(model.spec, model.spec.chunk_frames)
    y = (torch.rand(BATCH, N_TAGS, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    loss_fn = nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_value() -> torch.Tensor:
        torch.manual_seed(3)  # the same dropout masks each time, so the loss is one function
        return loss_fn(model(x), y)

    loss = loss_value()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}.{pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}.{pname} gets a zero gradient"
    first = loss.item()
    for _ in range(3):
        opt.step()
        opt.zero_grad()
        loss = loss_value()
        loss.backward()
    assert loss.item() < first


def test_frame_logits_reach_the_classifier() -> None:
    # a taggram must be made by the same output layer as the clip logits
    model = _small("musicnn").eval()
    x = _batch(model.spec, model.spec.chunk_frames)
    with torch.no_grad():
        before = model.frame_logits(x)
        model.classifier.bias += 1.0
        after = model.frame_logits(x)
    torch.testing.assert_close(after, before + 1.0)


def test_options_change_the_network() -> None:
    assert model_spec("fcn", n_mels=128, chunk_frames=900) == InputSpec("logmel", 128, 900)
    assert model_spec("shortchunk_res").n_bins == 128
    assert model_spec("musicnn").chunk_frames == 187
    plain = _small("fcn4", batchnorm_dropout=False)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.Dropout) for m in plain.features.blocks.modules())
    bn = _small("fcn4")
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.features.blocks.modules())
    lstm = _small("crnn", rnn="lstm", bidirectional=True)
    assert isinstance(lstm.rnn, nn.LSTM)
    assert lstm.embedding_dim == 2 * _small("crnn").embedding_dim
    wide = sum(p.numel() for p in get_model("musicnn", n_tags=N_TAGS, width=0.5).parameters())
    narrow = sum(p.numel() for p in get_model("musicnn", n_tags=N_TAGS, width=0.25).parameters())
    assert wide > 2 * narrow


def test_bad_options_raise() -> None:
    with pytest.raises(ParameterError, match="rnn"):
        get_model("crnn", n_tags=2, rnn="transformer")
    with pytest.raises(ParameterError, match="timbral_shapes"):
        get_model("musicnn", n_tags=2, timbral_shapes=((1.5, 7),))
    with pytest.raises(ParameterError, match="fcn channels"):
        get_model("fcn", n_tags=2, channels=(8, 8))
    for name in sorted(EXPECTED):
        with pytest.raises(ParameterError, match=f"{name} width"):
            get_model(name, n_tags=2, width=0)
    with pytest.raises(ParameterError, match="known models"):
        small_kwargs("nope")


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ParameterError, match="nope") as err:
        get_model("nope", n_tags=3)
    for name in EXPECTED:
        assert name in str(err.value)


def test_registering_a_name_twice_raises() -> None:
    with pytest.raises(ValueError, match="fcn"):
        register_model("fcn")(Tagger)
    with pytest.raises(ValueError, match="default"):
        register_model("another_default", default=True)(Tagger)
    assert "another_default" not in list_models()


def test_safe_pooling_clamps_to_the_input() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert max_pool2d_safe(x, (4, 4)).flatten().tolist() == [5.0]
    assert max_pool2d_safe(x, (1, 3)).flatten().tolist() == [2.0, 5.0]
    assert max_pool1d_safe(torch.tensor([[[1.0, 3.0, 2.0, 0.0, 5.0]]]), 2).flatten().tolist() == [3.0, 2.0]


def _imports(path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports too)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_no_import_cycle_in_the_zoo() -> None:
    """models.base is a leaf; the architectures import it, and only models.registry imports them all."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "models"
    graph = {f"models.{p.stem}": {m for m in _imports(p) if m.startswith("models.")} for p in root.glob("*.py")}
    assert not graph["models.base"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(m == goal or (m not in seen and reaches(m, goal, seen | {m})) for m in graph.get(start, ()))

    cycles = [m for m in graph if reaches(m, m, {m})]
    assert not cycles, cycles


def test_training_knows_every_baseline() -> None:
    """The config names the baselines without importing scikit-learn; the two lists must agree."""
    from models.baselines import BASELINES as BASELINE_CLASSES
    from pipeline.training.config import BASELINES

    assert set(BASELINES) == set(BASELINE_CLASSES)
    assert not set(BASELINES) & set(list_models())
