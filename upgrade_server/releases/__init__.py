"""Releases: versions of a product's software, their artifacts, channels and notes."""
