"""The Gradio chat page: a client of the gateway's own HTTP API. Never imports ``assistant``."""
