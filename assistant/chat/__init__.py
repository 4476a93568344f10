"""The question path: the chat service, the prompt, the grounding policy, relay, upstream,
query expansion, the answer log, request schemas, embeddings and feedback.

May import ``identity``, ``knowledge``, ``storage``, ``settings``, ``errors``, ``retrieval``."""
