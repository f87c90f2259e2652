"""An unchanged AsyncMQ app: a tasks module and a Settings subclass (settings.py)."""
