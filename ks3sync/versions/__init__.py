"""Versions of what a sync overwrites or deletes, their manifests, point-in-time restore and retention
(docs/versions.md). Modules, by job:

- ``stamp``: pass stamps and ``--as-of`` times (pure);
- ``layout``: where versions and manifests live inside the target, path checks (pure);
- ``manifest``: the manifest's values, ``encode`` and a strict ``decode`` of hostile input (pure);
- ``resolve``: the point-in-time rule (pure);
- ``retention``: which passes expire or go cold (pure);
- ``hide``: the target's listing without its versions area;
- ``recorder``: one pass's keeper (copies, manifest), used by the executor;
- ``area``: reading a target's versions area (passes, manifests);
- ``view``: the state at T as a read-only Store, restored by ``mirror``'s restore machinery;
- ``prune``: deleting expired passes and moving old ones to cold storage.

Nothing is imported here: a mirror without versions loads only what it uses.
"""
