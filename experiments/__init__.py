"""Experiments that use the project's library: see ``experiments/replication`` (issue 7)."""
