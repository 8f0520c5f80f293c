"""Music auto-tagging pipeline: datasets, features, training, evaluation and artifacts."""

__version__ = "0.1.0"
