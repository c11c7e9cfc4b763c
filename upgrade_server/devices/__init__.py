"""Devices in the field, their tokens and the device-facing API."""
