"""The Ray layer of mlac-audit: runs ``mlac`` work as Ray actors and tasks. Knows nothing of HTTP."""
