"""The ``mlac-audit`` command line."""
