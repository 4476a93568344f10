"""The managed vLLM engine: vLLM's OpenAI server as a supervised child process.

May import ``settings`` and ``errors`` only."""
