"""Who is asking: auth, local users and API keys, OIDC, signing.

May import ``storage``, ``settings`` and ``errors``."""
