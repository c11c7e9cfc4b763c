"""upgrade-agent: the reference device agent of upgrade_server.

It runs on a Linux device with only the product's trusted root.json: it asks
the server what to install, downloads it (resuming after interruptions),
verifies it with the stock python-tuf client (signatures, expiry, length,
hashes, and the product, version and hardware in the signed custom fields),
installs it with the configured command, and reports every step.

It is its own distribution (agent/pyproject.toml) and imports nothing of the
server: a device installs only click, semver, tuf and urllib3 (and what tuf
needs: securesystemslib).
"""
