"""The help-desk assistant server: settings, CLI, gateway and the managed vLLM engine."""

__version__ = "0.1.0"
