"""Coverage: what each device may install, and until when."""

# Connects the listeners that keep the stored coverage current (see events.py).
from upgrade_server.entitlements import listeners as _listeners  # noqa: F401
