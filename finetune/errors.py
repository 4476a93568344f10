"""Errors of the fine-tuning package, reported to users as one sentence."""


class FinetuneError(Exception):
    """A problem with the training data, the model or the options, that the user can fix."""
