"""A plug-in that fails to import."""

raise RuntimeError("this plug-in is broken")
