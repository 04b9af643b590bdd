"""Shared values for the crypto tests: the golden-vector key and IV of ks3-protocol.md §8.4."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ks3sync.crypto import EncryptionKey

GOLDEN_KEY = b"0123456789abcdef"
GOLDEN_IV = bytes(range(16))


def pattern(n: int) -> bytes:
    """P(n) of §8.4: bytes i mod 256 for i = 0..n-1."""
    return bytes(i % 256 for i in range(n))


@pytest.fixture
def golden_key() -> EncryptionKey:
    return EncryptionKey(GOLDEN_KEY)


@pytest.fixture
def golden_iv() -> bytes:
    return GOLDEN_IV


@pytest.fixture
def plain() -> Callable[[int], bytes]:
    return pattern
