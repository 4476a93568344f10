"""The Gradio chat page: a client of the gateway's own HTTP API. Never imports ``assistant``.

Imports point one way (``tests/test_ui_imports.py`` checks there is no cycle):
``chat_page`` (the page) -> ``layout/`` (each tab's components and wiring) -> ``controller``
(``PageController``) -> one behaviour class per part of the page (``chat``, ``tickets``,
``conversations``, ``admin``, ``analytics``, ``admin_tickets``) -> ``client`` (the gateway
over HTTP) and ``render`` (pure formatting).
"""
