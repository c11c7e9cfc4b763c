"""upgrade-agent: the reference device agent.

It runs on a Linux device with only the product's trusted root.json: it asks
the server what to install, downloads it (resuming after interruptions),
verifies it with the stock python-tuf client (signatures, expiry, length,
hashes, and the product, version and hardware in the signed custom fields),
installs it with the configured command, and reports every step.

It imports nothing of the server: a device needs only this package's
dependencies (click, urllib3, tuf).
"""
