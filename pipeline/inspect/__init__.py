"""Inside the model: feature maps of any layer, channels made audible, what channels like, filters.

In the order the data flows:

- `hooks` (torch): the layers each model declares inspectable (`models.base.ModelInfo.layers`)
  read through forward hooks; ``inspect.onnx``, the network with one output per such layer;
  the first layer's kernels;
- `precompute` (torch): `ChannelRecorder`, hooked into the score stage's one pass, keeps each
  channel's mean activation per clip and its activation-weighted input spectrum; after the pass
  a bounded number of channels per layer is kept (`stats.select_channels`) and written with
  their channel x tag correlations and spectra (`write_inspection`);
- `maps` (numpy; ONNX Runtime when run): a clip's feature maps from ``inspect.onnx``, torch-free,
  for the dashboard;
- `resynth` (numpy): a channel heard: the clip's STFT masked by the channel's map (original
  phase), or, for the sample-level model, the map itself as a signal;
- `stats` (numpy): correlations, channel selection, top clips;
- `filters` (numpy): first-layer kernels grouped by shape, 1-D kernels' frequency responses.
"""
