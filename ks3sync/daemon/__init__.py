"""The sync service: per-sync schedulers fed by the journal's change queue, periodic reconciles through
the mirror engine, signals and systemd notifications. With ``cli/``, the only place that wires concrete
parts (journal, store, watcher, engine) together."""
