"""The offline model catalogue: real weights from pinned registry packages, as model folders.

May import ``errors`` only; takes folders as arguments (no settings object). Heavy libraries
(transformers, torch, gguf) are imported inside the conversion step."""
