"""Training a tagger into a run directory, module by module in the order a run uses them.

- `config`: `TrainConfig` (nesting `FeatureConfig` and `LabelConfig`), `CPU_RECIPE`,
  `recipe_config`, `demo_train_config`
- `resolve`: what a config resolves to (model options, features, chunk length, labels)
- `data` and `loaders`: the feature cache, the usable rows per split, datasets and loaders
- `optim`: optimisers, learning-rate schedules, per-tag positive weights
- `checkpoints`: checkpoints, history, a source run's weights
- `transfer`: transfer-learning levels (what freezes), the source's record, frozen embeddings
- `loop`: `train_one_epoch`, `validate` and the epoch loop
- `baseline`: a classical baseline's run
- `train`: `train(config, corpus_dir, out_dir)`, the entry point
"""
