"""Command-line entry points. Each command lives in its own module, imported only when it runs,
so `ks3sync --help` and short commands start fast."""
