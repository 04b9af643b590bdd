"""ks3sync: rsync-style directory synchronisation for Kingsoft Cloud KS3.

Sub-packages (see STYLE.md / docs/architecture.md):
  ks3/         protocol client (a leaf: imports nothing else from ks3sync)
  localserver/ KS3-compatible loopback server (a leaf too)
  crypto/      SDK-compatible client-side encryption
  journal/     SQLite state: entries, change queue, multipart uploads
  scan/        local walk + filters
  plan/        pure planner
  store/       narrow Store protocol, KS3 adapter, in-memory fake
  transfer/    executor for planned operations
  daemon/      the service
  cli/         commands; with daemon/, the only place concrete parts are wired together
"""

__version__ = "0.1.0"
