"""Loaders, chunking, embeddings, the Chroma store and the incremental indexer.

Takes plain parameters; never imports ``assistant``.
"""
