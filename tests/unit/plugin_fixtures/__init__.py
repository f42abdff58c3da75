"""Modules that stand for third-party plug-ins in tests/unit/test_plugins.py."""
