"""Loaders, chunking, embeddings, the Chroma store and the incremental indexer (whose runs
tell one ``progress.IndexObserver`` how they go).

Takes plain parameters; never imports ``assistant``.
"""
