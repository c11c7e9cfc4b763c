"""Customer organisations: who owns devices and whose staff log in."""
