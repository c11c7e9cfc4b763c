"""Products (device lines) and their hardware revisions."""
