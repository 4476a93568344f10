"""HTTP routes, thin: each takes its services as typed dependencies
(``assistant.gateway.deps``) and calls them."""
