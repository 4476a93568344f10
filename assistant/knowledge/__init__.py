"""The company's documents inside the assistant: the index service, reindex jobs, the docs folder.

May import ``storage``, ``identity`` (who may read what), ``settings``, ``errors``,
``retrieval``."""
