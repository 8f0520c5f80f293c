"""The model zoo (CNN taggers registered by name) and classical baselines.

`models.base` holds the contract (`Tagger`, `InputSpec`, `register_model`); each architecture
module registers itself; `models.registry` imports them all and looks models up by name.
"""
