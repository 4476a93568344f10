"""Errors of the retrieval package, reported to users as one sentence."""


class RetrievalError(Exception):
    """A problem with documents, the index or its options that the user can fix."""
