"""Analytics for the IT team: figures, sources, plots, export, content gaps, clustering.

May import ``chat`` (the answer log), ``escalation`` (the outbox), ``storage``, ``retrieval``,
``settings``, ``errors``."""
