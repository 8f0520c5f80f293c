"""Reference outputs of the original musicnn (TensorFlow), for the conversion tests. Run once, by hand.

Not part of the toolkit: it needs TensorFlow, which the project never depends on. It runs the
published musicnn 0.1.0 code and weights (the wheel that ``pip download musicnn==0.1.0 --no-deps``
fetches, unpacked) on audio files, and writes, per model and file, an ``.npz`` with the
per-3-second-patch taggram (sigmoid outputs), the penultimate embeddings of every patch and the
tag names, plus ``versions.json``. See docs/pretrained.md for the environment and the command::

    python scripts/musicnn_reference.py --musicnn /tmp/musicnn-dl/whl --out tests/fixtures/musicnn_reference \
        ../shared/fixtures/real-audio/*.mp3

Shims, each because the original no longer runs as published on current libraries:

- ``TF_USE_LEGACY_KERAS=1`` (with tf_keras installed): TensorFlow >= 2.16 ships Keras 3,
  which no longer provides the ``tf.compat.v1.layers`` musicnn builds its graph with.
- numpy >= 2 (NEP 50) keeps ``10000 * float16_array`` in float16, which overflows to inf for
  loud bins (mel power > 6.55); numpy 1, which musicnn was written for, promoted it to float32
  (``min_scalar_type(10000)`` is uint16, and float16 with uint16 promotes to float32). The
  log-mel is computed here as numpy 1 did: the mel power rounded to float16, then
  ``log10(10000 * x + 1)`` in float32.
- The penultimate layer is fetched per patch. musicnn's own ``extractor`` concatenates the
  *first* batch's ``penultimate`` (and ``cnn1``-``cnn3``) for every later batch (musicnn issue
  #20), so its features after the first patch are copies; the correct definition is each
  patch's own batch-normalised dense layer (musicnn) or flattened last pool (vgg).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ("MTT_musicnn", "MTT_vgg", "MSD_musicnn", "MSD_vgg")


def log_mel_batch(path: Path, n_frames: int):  # -> (patches (N, n_frames, 96), spectrogram)
    """musicnn's ``batch_data`` with numpy 1's type promotion (see the module docstring)."""
    import librosa
    import numpy as np
    from musicnn import configuration as config

    audio, sr = librosa.load(str(path), sr=config.SR)
    rep = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE,
                                         n_mels=config.N_MELS).T
    rep = np.log10(10000 * rep.astype(np.float16).astype(np.float32) + 1)
    starts = range(0, rep.shape[0] - n_frames + 1, n_frames)  # non-overlapping, the remainder dropped
    return np.stack([rep[s:s + n_frames] for s in starts]), rep


def run_model(model: str, musicnn_dir: Path, files: list[Path], out: Path) -> None:
    import librosa
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    labels = config.MTT_LABELS if model.startswith("MTT") else config.MSD_LABELS
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, model, len(labels))
        probs = tf.nn.sigmoid(outputs[0])
        penultimate = (tf.compat.v1.layers.flatten(outputs[5]) if "vgg" in model else outputs[8])
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, str(musicnn_dir / "musicnn" / model) + "/")
    for path in files:
        batch, _ = log_mel_batch(path, n_frames)
        # one patch per run, as musicnn's extractor does (BATCH_SIZE = 1)
        grams, pens = zip(*(sess.run([probs, penultimate], {x: batch[i:i + 1], is_training: False})
                            for i in range(len(batch))))
        target = out / f"{path.stem}.{model}.npz"
        np.savez_compressed(target, taggram=np.concatenate(grams).astype(np.float32),
                            penultimate=np.concatenate(pens).astype(np.float32), tags=np.array(labels))
        print(f"{target}: {len(batch)} patches")
    sess.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--musicnn", type=Path, required=True, help="the unpacked musicnn 0.1.0 wheel")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    sys.path.insert(0, str(args.musicnn))
    args.out.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        run_model(model, args.musicnn, args.files, args.out)
    import librosa
    import numpy as np
    import tensorflow as tf

    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "numpy": np.__version__,
                "librosa": librosa.__version__, "musicnn": "0.1.0",
                "command": "python scripts/musicnn_reference.py --musicnn DIR --out DIR FILES"}
    for name in ("tf_keras", "soundfile", "soxr"):
        with contextlib.suppress(ImportError, AttributeError):
            versions[name] = __import__(name).__version__
    (args.out / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
