"""The HTTP gateway: services (the one wiring place), app (create_app), deps (typed route
dependencies), routes, session (the page's sign-in middleware), limits, metrics, serve.

May import every other package of ``assistant`` except ``cli``; nothing but ``cli`` imports it."""
