"""Offline answer evaluation: ask a served assistant, score, report. The server never uses it.

May import ``chat`` (schemas and prompt wording), ``settings``, ``errors``, ``retrieval``."""
