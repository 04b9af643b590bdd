"""`ks3sync keygen FILE`: write a new random AES-128 key file for client-side encryption.

The file holds exactly 16 random bytes (no newline), mode 0600, created with O_EXCL so an existing key
is never overwritten: losing a key loses every object encrypted with it. The key never reaches stdout.
"""

from __future__ import annotations

import click

from ks3sync.crypto.errors import KeyFileError, KeyFileExistsError
from ks3sync.crypto.key import EncryptionKey

EXIT_EXISTS = 2  # the same code click uses for usage errors: the command line asked for something refused
EXIT_FAILED = 1


@click.command("keygen")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
def keygen(file: str) -> None:
    """Write a new random 16-byte encryption key to FILE (mode 0600; never overwrites).

    FILE is what the official SDK reads with Connection(local_encrypt=True, local_key_path=FILE).
    Back it up: encrypted objects cannot be read without it."""
    from ks3sync.cli.output import fail, line

    key = EncryptionKey.generate()
    try:
        key.write_new_file(file)
    except KeyFileExistsError as exc:
        fail(str(exc), EXIT_EXISTS)
    except KeyFileError as exc:
        fail(str(exc), EXIT_FAILED)
    line(f"wrote a new 16-byte key to {file} (mode 0600, fingerprint {key.fingerprint})")
