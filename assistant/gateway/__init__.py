"""The HTTP gateway: create_app, routes, session middleware, limits, metrics.

May import every other package of ``assistant`` except ``cli``; nothing but ``cli`` imports it."""
