"""Tests against a real LXD daemon (a package, so that its conftest does not shadow tests/conftest.py)."""
