"""The model zoo (CNN taggers registered by name) and classical baselines."""

from models.registry import InputSpec, Tagger, get_model, list_models, model_spec, register_model

__all__ = ["InputSpec", "Tagger", "get_model", "list_models", "model_spec", "register_model"]
