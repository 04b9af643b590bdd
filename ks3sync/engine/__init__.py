"""The engine: one pass between a local folder and a Store, as an orchestrator of the parts that do the work.

- ``engine.mirror``: ``run_mirror``, the pass (scan -> plan -> execute -> record) that ``ks3sync mirror``
  runs once and the service runs for every reconcile; ``execute``, operations a caller already
  planned. The public entry point: it also re-exports ``MirrorOptions``, ``MirrorResult``,
  ``JournalLike`` and ``NothingToRestore``.
- ``engine.planning``: steps 1-3 of a pass, the march of scan, listing and journal into a plan.
- ``engine.ahead``: the pass's listing and pending uploads, asked for before they are needed.
- ``engine.types``: what a pass takes and gives back (options, the journal protocol, the result).
- ``engine.repair``: ``ks3sync repair``, the other pass over a pair: a scan and a listing compared
  file by file to rebuild a lost or damaged journal's records (invariant 8).

The engine decides the order of the steps and what crosses between them; the work is done by
``scan/`` (the local scan), ``store/`` (the listing read ahead), ``plan/`` (the decision) and
``transfer/`` (the executor, stale uploads, the restore folder).

This file imports nothing, so that importing a submodule costs only that submodule (``ks3sync --help``
and the CLI's lazy commands depend on it). Must not import: the CLI, the daemon, the protocol client;
a mirror pass takes any ``JournalLike`` (only repair, which rebuilds the journal, opens a concrete one).
"""
