"""Inside the model (pipeline.inspect): layer maps, masks, channel statistics, filters, the score-stage precompute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.base import inspectable_layers
from models.registry import get_model, list_models, model_layers, small_kwargs
from pipeline.inspect import filters, resynth, stats
from pipeline.inspect.hooks import export_inspector, layer_infos, layer_outputs
from pipeline.inspect.maps import LayerInfo, OnnxInspector, chunk_inputs, stitch
from pipeline.run import files as rf
from pipeline.run.rundir import RunDir

SR, N_FFT, HOP = 16000, 512, 256

# (channels, frequency rows or None, time steps) of each inspectable layer of each registered CNN at
# its small test size, for one chunk of its own input: the architectures' pooling arithmetic (a
# hook on the wrong module, or a layer left out, changes it).
EXPECTED = {
    "crnn": [(16, 48, 909), (32, 16, 303), (32, 4, 75), (32, 1, 18)],
    "fcn": [(16, 48, 454), (32, 24, 113), (32, 12, 28), (32, 4, 5), (16, 1, 5)],
    "fcn4": [(8, 48, 454), (24, 12, 90), (48, 4, 11), (128, 1, 11)],
    "multiscale": [(12, 48, 454), (25, 24, 113), (18, 12, 56), (25, 24, 113), (18, 12, 56), (18, 12, 56),
                   (18, 12, 56), (18, 6, 28)],
    "musicnn": [(26, None, 187)] * 2 + [(6, None, 187)] * 3 + [(8, None, 187)] * 3,
    "samplecnn": [(16, None, 19683), (16, None, 6561), (16, None, 2187), (32, None, 729), (32, None, 243),
                  (32, None, 81), (32, None, 27), (32, None, 9), (32, None, 3), (64, None, 1), (64, None, 1)],
    "shortchunk_res": [(16, 64, 116), (16, 32, 58), (32, 16, 29), (32, 8, 15), (32, 4, 8), (32, 2, 4), (64, 1, 2)],
    "vgg": [(8, 48, 92), (8, 24, 46), (8, 12, 23), (8, 6, 11), (8, 1, 2)],
}


def small(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return get_model(name, n_tags=5, **small_kwargs(name)).eval()


def test_every_registered_cnn_is_in_the_table() -> None:
    assert sorted(EXPECTED) == list_models()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_activation_shapes_per_model_and_layer(name: str) -> None:
    model = small(name)
    spec = model.spec
    outs = layer_outputs(model, name, torch.randn(2, spec.n_bins, spec.chunk_frames))
    got = [(o.shape[1], o.shape[2] if o.ndim == 4 else None, o.shape[-1]) for o in outs.values()]
    assert got == EXPECTED[name]
    assert all(o.shape[0] == 2 for o in outs.values())
    infos = layer_infos(model, name, n_bins=spec.n_bins, chunk_frames=spec.chunk_frames)
    assert [(i.channels, i.freq_rows or None, i.chunk_steps) for i in infos] == EXPECTED[name]
    assert [i.name for i in infos] == list(outs)


def test_a_pattern_matching_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="'nothing.*' matches no module"):
        inspectable_layers(small("fcn"), ("nothing.*",))
    assert [n for n, _ in model_layers("vgg", small("vgg"))] == [f"blocks.{i}" for i in range(5)]


def test_layer_info_from_a_bad_entry_names_the_file() -> None:
    from pipeline.errors import RunDirError

    with pytest.raises(RunDirError, match="inspect.json: a layer entry"):
        LayerInfo.from_dict({"name": "x"})
    with pytest.raises(RunDirError, match="impossible geometry"):
        LayerInfo.from_dict({"name": "x", "output": "o", "channels": 0, "freq_rows": 0, "chunk_steps": 1})


def test_chunks_and_stitching_keep_the_clip_time_axis() -> None:
    features = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    chunks = chunk_inputs(features, 4)
    assert chunks.shape == (3, 2, 4)
    assert np.array_equal(chunks[2, :, :2], features[8:].T) and not chunks[2, :, 2:].any()  # padded
    per_chunk = np.stack([c[None] for c in chunks])  # (3, 1, 2, 4): a "layer" that is the identity
    joined = stitch(per_chunk, LayerInfo("x", "o", 1, 2, 4).n_steps(10, 4))
    assert joined.shape == (1, 2, 10) and np.array_equal(joined[0], features.T)


# ---------------------------------------------------------------------------------------------
# hearing a channel
# ---------------------------------------------------------------------------------------------
def noise(seconds: float = 1.3, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(SR * seconds)) * 0.1).astype(np.float32)


def test_a_mask_of_ones_gives_back_the_original() -> None:
    y = noise()
    n_frames = 1 + len(y) // HOP
    for mask in (np.ones((n_frames, 1)), np.ones((n_frames, N_FFT // 2 + 1))):
        assert np.abs(resynth.resynthesize(y, mask) - y).max() < 1e-6
    # a constant positive map is "on" everywhere: a mask of ones
    grid = resynth.mask_grid(np.full(7, 2.5), n_frames, steps_per_frame=7 / n_frames)
    assert np.array_equal(grid, np.ones((n_frames, 1)))


def test_a_mask_of_zeros_gives_silence() -> None:
    y = noise()
    n_frames = 1 + len(y) // HOP
    out = resynth.resynthesize(y, np.zeros((n_frames, N_FFT // 2 + 1)))
    assert not out.any()
    scaled, gain = resynth.match_loudness(out, y)
    assert not scaled.any() and gain is None  # silence is not amplified into noise
    assert not resynth.mask_grid(np.zeros((3, 5)), n_frames, steps_per_frame=0.1, bin_rows=np.zeros(257, int)).any()


def test_a_time_mask_silences_where_the_channel_is_off() -> None:
    y = noise(2.0)
    n_frames = 1 + len(y) // HOP
    channel = np.r_[np.ones(10), np.zeros(10)]  # on in the first second only
    mask = resynth.mask_grid(channel, n_frames, steps_per_frame=20 / n_frames)
    out = resynth.resynthesize(y, mask)
    half = len(y) // 2
    assert np.abs(out[:half - N_FFT] - y[:half - N_FFT]).max() < 1e-6
    assert np.abs(out[half + N_FFT:]).max() < 1e-9


def test_a_frequency_mask_keeps_the_bands_under_its_active_rows() -> None:
    t = np.arange(SR) / SR
    low, high = np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 5000 * t)
    y = (0.3 * (low + high)).astype(np.float32)
    n_frames = 1 + len(y) // HOP
    rows = resynth.bin_rows_for(4, sample_rate=SR, n_fft=N_FFT, n_mels=96)
    assert rows[0] == 0 and rows[-1] == 3 and np.all(np.diff(rows) >= 0)
    channel = np.zeros((4, 8))
    channel[3] = 1.0  # only the top quarter of the mel bands
    out = resynth.resynthesize(y, resynth.mask_grid(channel, n_frames, steps_per_frame=8 / n_frames, bin_rows=rows))
    spectrum = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(len(out), 1 / SR)
    assert spectrum[np.argmin(np.abs(freqs - 5000))] > 100 * spectrum[np.argmin(np.abs(freqs - 200))]


def test_loudness_matching_and_wav_encoding() -> None:
    y = noise()
    quiet = y * 0.01
    scaled, gain = resynth.match_loudness(quiet, y)
    assert gain == pytest.approx(40.0, abs=0.01) and resynth.rms(scaled) == pytest.approx(resynth.rms(y), rel=1e-4)
    loud, _ = resynth.match_loudness(np.r_[np.zeros(999), 1.0], np.ones(1000))
    assert np.abs(loud).max() <= resynth.PEAK + 1e-6  # limited, never clipped
    data = resynth.wav_bytes(scaled, SR)
    assert data[:4] == b"RIFF" and len(data) == 44 + 2 * len(y)


def test_a_waveform_map_plays_as_a_signal() -> None:
    rate = 1000  # a map of 1000 steps per second (a sample-level layer after pooling)
    steps = np.arange(rate) / rate
    channel = 1.0 + np.sin(2 * np.pi * 50 * steps)  # positive, as after a ReLU
    signal = resynth.map_signal(channel, SR)
    assert len(signal) == SR and abs(signal.mean()) < 1e-9
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    assert freqs[np.argmax(np.abs(np.fft.rfft(signal)))] == pytest.approx(50, abs=1)


# ---------------------------------------------------------------------------------------------
# what a channel likes
# ---------------------------------------------------------------------------------------------
def test_channel_tag_correlation_on_a_toy_case() -> None:
    acts = np.array([[1, 5, 3], [2, 5, 1], [3, 5, 4], [4, 5, 2]], dtype=np.float32)  # channel 1 is constant
    tags = np.array([[0, 4, 1, np.nan], [1, 3, 1, np.nan], [1, 2, 1, np.nan], [1, 1, 1, np.nan]])
    r = stats.pearson(acts, tags)
    assert r.shape == (3, 4)
    assert r[0, 1] == pytest.approx(-1.0) and r[0, 0] == pytest.approx(np.corrcoef([1, 2, 3, 4], [0, 1, 1, 1])[0, 1])
    assert np.isnan(r[1]).all()  # a constant channel correlates with nothing
    assert np.isnan(r[:, 2]).all() and np.isnan(r[:, 3]).all()  # a constant tag, an unannotated one
    assert r[2, 1] == pytest.approx(np.corrcoef([3, 1, 4, 2], [4, 3, 2, 1])[0, 1])
    assert stats.top_tags(r[0], ["a", "b", "c", "d"], 2) == [("a", pytest.approx(r[0, 0])), ("b", -1.0)]


def test_channels_are_chosen_by_their_spread_over_clips() -> None:
    rng = np.random.default_rng(0)
    means = rng.standard_normal((50, 6)) * np.array([0.1, 3.0, 0.0, 1.0, 2.0, 0.5])
    assert stats.select_channels(means, 3).tolist() == [1, 3, 4]
    assert stats.select_channels(means, 10).tolist() == [0, 1, 3, 4, 5]  # the dead channel 2 never
    assert stats.top_clips(np.array([0.5, np.nan, 2.0, 1.0]), 2).tolist() == [2, 3]


def test_weighted_spectra_of_a_stationary_input_are_its_spectrum() -> None:
    """An input whose spectrum does not change over time is what every active channel lets through."""
    from pipeline.inspect.precompute import ChannelRecorder
    from pipeline.scoring.inference import TorchNetwork

    class Holder:
        net = None

    model = small("fcn")
    profile = np.linspace(-1, 1, 96, dtype=np.float32)
    x = np.repeat(profile[None, :, None], 400, axis=2)
    x = np.concatenate([x, x + 0.0]).astype(np.float32)  # (2, 96, 400)
    holder = Holder()
    holder.net = TorchNetwork(model, "cpu")
    recorder = ChannelRecorder(model, "fcn", n_clips=2, waveform=False, device=torch.device("cpu"))
    with recorder.attached(holder):
        holder.net.embed_logits(x)
        holder.net.frame_logits(x)  # a taggram pass: not recorded
        recorder.clips_done([0, 1])
    assert set(recorder.means) == {f"features.blocks.{i}" for i in range(5)}
    for name, total in recorder.spec_sum.items():
        weight = recorder.spec_weight[name]
        on = (weight > 0).all(dim=1)
        assert on.any()
        assert torch.allclose(total[on] / weight[on], torch.from_numpy(profile).expand(int(on.sum()), -1), atol=1e-4)
    assert recorder.means["features.blocks.0"].shape == (2, 16)
    assert np.allclose(recorder.corpus_sum.numpy() / recorder.corpus_count, profile, atol=1e-5)


def test_the_waveform_model_is_recorded_on_its_stft() -> None:
    from pipeline.features.extract import FeatureConfig
    from pipeline.inspect.precompute import ChannelRecorder
    from pipeline.scoring.inference import TorchNetwork

    class Holder:
        net = None

    model = small("samplecnn")
    holder = Holder()
    holder.net = TorchNetwork(model, "cpu")
    recorder = ChannelRecorder(model, "samplecnn", n_clips=1, waveform=True, device=torch.device("cpu"))
    with recorder.attached(holder):
        holder.net.embed_logits(np.random.default_rng(0).standard_normal((2, 1, 59049)).astype(np.float32))
        recorder.clips_done([0])
    assert all(m.shape == (1, c) for m, (c, _, _) in zip(recorder.means.values(), EXPECTED["samplecnn"]))
    assert all(t.shape[1] == 257 for t in recorder.spec_sum.values())
    axis = recorder.spectrum_axis(FeatureConfig(kind="waveform"))
    assert axis["kind"] == "linear" and axis["n"] == 257 and axis["hz"][-1] == 8000


# ---------------------------------------------------------------------------------------------
# filters
# ---------------------------------------------------------------------------------------------
def test_filter_groups_and_frequency_responses() -> None:
    freqs, db = filters.frequency_response(np.array([[1.0, 1.0], [1.0, -1.0]]), SR)
    assert freqs[np.argmax(db[0])] == 0 and freqs[np.argmax(db[1])] == SR / 2  # low-pass, high-pass
    assert db.max() == 0.0
    assert filters.peak_frequencies(np.array([[1.0, -1.0]]), SR).tolist() == [SR / 2]
    found = filters.groups({"a": np.zeros((4, 1, 38, 7)), "b": np.zeros((3, 1, 1, 128)), "c": np.zeros((2, 1, 3, 3)),
                            "d": np.zeros((5, 1, 3))})
    assert [(g.name, g.kind, g.kernels.shape) for g in found] == [
        ("a", "vertical", (4, 38, 7)), ("b", "horizontal", (3, 1, 128)), ("c", "square", (2, 3, 3)),
        ("d", "1d", (5, 3))]
    assert "timbral" in found[0].label and "temporal" in found[1].label
    with pytest.raises(ValueError, match="should be"):
        filters.groups({"x": np.zeros((2, 3, 3, 3))})


# ---------------------------------------------------------------------------------------------
# the score stage's precompute, written and read back
# ---------------------------------------------------------------------------------------------
def test_the_score_stage_writes_the_inside_files(tiny_run: Path) -> None:
    run = RunDir(tiny_run)
    entry = run.manifest()["stages"]["score"]
    assert set(rf.INSIDE_FILES) <= set(entry["files"])
    assert entry["inside"]["channels"] > 0 and entry["inside"]["basis"] == "annotations"
    config = run.read_json(rf.INSPECT)
    index = run.read_table(rf.CHANNEL_INDEX)
    acts = run.read_array(rf.CHANNEL_ACTIVATIONS)
    corr = run.read_array(rf.CHANNEL_TAGS)
    spectra = run.read_array(rf.CHANNEL_SPECTRA)
    preds = run.read_table(rf.PREDICTIONS)
    tags = [c[5:] for c in preds.columns if c.startswith("prob:")]
    assert acts.shape == (len(preds), len(index)) and corr.shape == (len(index), len(tags))
    assert spectra.shape == (len(index), config["spectrum"]["n"]) and config["spectrum"]["kind"] == "mel"
    assert index["column"].tolist() == list(range(len(index)))
    for layer in config["layers"]:
        chosen = index[index["layer"] == layer["name"]]["channel"].tolist()
        assert chosen == layer["selected"] and len(chosen) <= config["selection"]["max_per_layer"]
    # the correlations are those of the stored activations with the annotations
    truth = preds[[f"true:{t}" for t in tags]].to_numpy(np.float64)
    assert np.allclose(corr, stats.pearson(acts, truth), equal_nan=True, atol=1e-6)
    with np.load(run / rf.FILTERS, allow_pickle=False) as npz:
        kinds = {g.kind for g in filters.groups(dict(npz))}
    assert kinds == {"vertical", "horizontal"}  # musicnn's timbral and temporal front end


def test_recorded_clip_means_match_the_network(tiny_run: Path) -> None:
    """A clip's stored mean activation is the mean of the layer's output over the chunks it was scored in."""
    from pipeline.scoring.chunks import chunk_clip
    from pipeline.scoring.inference import feature_cache, load_run
    from pipeline.sources.loader import corpus_from_record

    run = RunDir(tiny_run)
    model = load_run(tiny_run)
    cache = feature_cache(model, corpus_from_record(run.manifest()["corpus"]))
    preds = run.read_table(rf.PREDICTIONS)
    index = run.read_table(rf.CHANNEL_INDEX)
    acts = run.read_array(rf.CHANNEL_ACTIVATIONS)
    for row in (0, len(preds) - 1):
        features = np.asarray(cache.read(preds["clip_id"].iat[row]), np.float32)
        chunks = chunk_clip(features, model.chunk_frames, normalizer=model.normalizer, tail=model.chunk_tail)
        outs = layer_outputs(model.model, model.checkpoint["model_name"], torch.from_numpy(chunks))
        for _, entry in index.iterrows():
            out = outs[entry["layer"]][:, entry["channel"]]
            want = out.reshape(len(chunks), -1).mean(dim=1).mean().item()
            assert acts[row, entry["column"]] == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_live_maps_from_onnx_match_torch(tiny_run: Path) -> None:
    from pipeline.scoring.inference import load_run

    run = RunDir(tiny_run)
    model = load_run(tiny_run)
    inspector = OnnxInspector(tiny_run, run.read_json(rf.INSPECT))
    features = np.random.default_rng(0).standard_normal((int(model.chunk_frames * 2.5), model.features.n_bins))
    maps = inspector.maps(features.astype(np.float32))
    chunks = chunk_inputs(features, model.chunk_frames, model.normalizer)
    outs = layer_outputs(model.model, model.checkpoint["model_name"], torch.from_numpy(chunks))
    for layer in inspector.layers:
        want = stitch(outs[layer.name].numpy(), layer.n_steps(len(features), model.chunk_frames))
        want = want[:, 0] if want.ndim == 3 and not layer.has_freq else want
        assert maps[layer.name].shape == want.shape
        assert np.allclose(maps[layer.name], want, atol=1e-3)


def test_export_of_a_2d_model_and_a_damaged_inspector(tmp_path: Path) -> None:
    from pipeline.errors import RunDirError
    from pipeline.features.extract import FeatureConfig

    model = small("shortchunk_res")
    facts = export_inspector(model, "shortchunk_res", tmp_path / rf.INSPECT_ONNX, n_bins=128, chunk_frames=231)
    assert facts["max_abs_diff"] < 1e-3
    infos = layer_infos(model, "shortchunk_res", n_bins=128, chunk_frames=231)
    config = {"layers": [i.to_dict() for i in infos], "chunk_frames": 231,
              "features": FeatureConfig(n_mels=128).to_dict(), "normalizer": {"mode": "none"}}
    maps = OnnxInspector(tmp_path, config).maps(np.zeros((500, 128), np.float32))
    assert maps["blocks.0"].shape == (16, 64, infos[0].n_steps(500, 231)) and maps["blocks.6"].ndim == 2
    (tmp_path / rf.INSPECT_ONNX).write_bytes(b"not onnx")
    with pytest.raises(RunDirError, match="unreadable ONNX model"):
        OnnxInspector(tmp_path, config)
    with pytest.raises(RunDirError, match="does not exist"):
        OnnxInspector(tmp_path / "elsewhere", {**config, "onnx_error": "boom"})
    json.dumps(config)  # what inspect.json holds is plain JSON


def test_inspect_json_layers_are_checked() -> None:
    from pipeline.errors import RunDirError
    from pipeline.inspect.maps import layers_of

    with pytest.raises(RunDirError, match="'layers' should be a non-empty list"):
        layers_of({"layers": []})
    with pytest.raises(RunDirError, match="each layer entry should be an object"):
        layers_of({"layers": ["blocks.0"]})
    layer = LayerInfo("blocks.0", "layer0", 4, 8, 10)
    assert layers_of({"layers": [{**layer.to_dict(), "selected": [1]}]}) == [layer]
    assert layer.steps_per_second(20, 62.5) == pytest.approx(31.25) and layer.n_steps(45, 20) == 23
