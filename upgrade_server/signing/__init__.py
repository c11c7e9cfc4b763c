"""TUF repositories: keys, signed metadata, offline threshold signing. No HTTP."""
