"""What a handler receives: the parsed request, who signed it, its body stream and the server's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ks3sync.localserver.auth import AuthResult
from ks3sync.localserver.config import ServerConfig
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.exchange import BodyReader
from ks3sync.localserver.request import Request
from ks3sync.localserver.storage import Storage


@dataclass(slots=True)
class Context:
    request: Request
    auth: AuthResult
    body: BodyReader
    storage: Storage
    config: ServerConfig
    request_id: str
    now: Callable[[], float]

    @property
    def amz(self) -> bool:
        """S3-dialect client (SigV4): answer with x-amz- header names."""
        return self.auth.scheme.startswith("sigv4")

    @property
    def bucket(self) -> str:
        assert self.request.bucket is not None
        return self.request.bucket

    @property
    def key(self) -> str:
        assert self.request.key is not None
        return self.request.key

    def kss(self, name: str) -> str:
        """Response header name for x-kss-<name> in the client's dialect."""
        return ("x-amz-" if self.amz else "x-kss-") + name

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.request.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise S3Error(
                "InvalidArgument",
                f"{name} must be an integer.",
                extra={"ArgumentName": name, "ArgumentValue": raw},
            ) from exc
        if value < low:
            raise S3Error(
                "InvalidArgument",
                f"{name} must be at least {low}.",
                extra={"ArgumentName": name, "ArgumentValue": raw},
            )
        return min(value, high)
