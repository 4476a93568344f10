"""The company's documents inside the assistant: the index service, reindex jobs, the docs folder,
and the retrieval parts the settings describe (``factories``).

May import ``storage``, ``identity`` (who may read what), ``settings``, ``errors``,
``retrieval``."""
