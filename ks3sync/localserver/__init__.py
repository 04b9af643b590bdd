"""ks3sync local-server: a KS3-compatible server on loopback, for tests, benchmarks and trying ks3sync.

A leaf package: it imports nothing else from ks3sync (an import-linter contract enforces it), so it shares
no code with the client and a client bug cannot be mirrored, and hidden, by the server.

Public surface: `EmbeddedServer` (run it in a background thread), `ServerConfig`, `serve_forever` (the
CLI's foreground server), `shared_server` (`--endpoint local`: one embedded server per root, shared by
processes), `RootInUse` (another process owns the storage root).
"""

from ks3sync.localserver.config import ServerConfig
from ks3sync.localserver.rootlock import RootInUse
from ks3sync.localserver.server import EmbeddedServer, serve_forever
from ks3sync.localserver.shared import shared_server

__all__ = ["EmbeddedServer", "RootInUse", "ServerConfig", "serve_forever", "shared_server"]
