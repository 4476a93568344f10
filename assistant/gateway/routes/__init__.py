"""HTTP routes: thin, they fetch services from app.state and call them."""
