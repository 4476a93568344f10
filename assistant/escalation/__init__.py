"""Escalations: the service, the outbox store, its worker and the ticket connectors.

May import ``identity``, ``chat`` (the answer log), ``storage``, ``settings``, ``errors``."""
