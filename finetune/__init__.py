"""Transcripts to chat records, PII scrubbing, LoRA SFT, evaluation, and the demo model.

Takes plain parameters; never imports ``assistant``.
"""
