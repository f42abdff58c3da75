"""The artifact store: how checkpoints, datasets and job outputs reach every Ray node without a shared disk.

- :mod:`.store`: one small interface (:class:`~.store.ArtifactStore`) over ``fsspec`` (``file://``, ``s3://``, ...).
- :mod:`.gateway`: a Ray actor on the API's node that serves a store only that node can reach (the ``file://``
  default) to every other node.
- :mod:`.access`: which store a process opens (:class:`~.access.StoreAccess`, plain data that crosses to Ray).
- :mod:`.trees`: directories by content (sha256 blobs plus a manifest whose hash is the tree's id).
- :mod:`.cache`: a node-local, bounded, hash-verified cache of trees (safe under concurrent trials).
- :mod:`.refs` and :mod:`.localize`: ``mlac-artifact://<tree>/<name>`` references and their local paths.
- :mod:`.mirror`: a job's output folder kept in the store (so a driver restarted elsewhere resumes from it).
"""
