"""Tests against a real S3 server (a package, so that its conftest does not shadow tests/conftest.py)."""
