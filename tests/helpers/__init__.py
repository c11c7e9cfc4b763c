"""Helpers the test modules share: a test module imports from here (or from
tests/conftest.py's fixtures), never from another test module
(tests/test_layout.py holds that)."""
