"""Devices in the field: their records, tokens and provisioning."""
