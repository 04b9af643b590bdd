"""The engine: one pass between a local folder and a Store, as an orchestrator of the parts that do the work.

``engine.mirror.run_mirror`` is the pass (scan -> plan -> execute -> record) that ``ks3sync mirror`` runs
once and the service runs for every reconcile; ``engine.mirror.execute`` runs operations a caller
already planned. The engine decides the order of the steps and what crosses between them; the work is
done by ``scan/``, ``store/``, ``plan/`` and ``transfer/``.

This file imports nothing, so that importing a submodule costs only that submodule (``ks3sync --help``
and the CLI's lazy commands depend on it). Must not import: the CLI, the daemon, the protocol client.
"""
