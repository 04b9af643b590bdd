"""`ks3sync check-config --config FILE`: validate a configuration and print it with every default
filled in and secrets masked. A problem is one line on stderr and exit status 2.

Also home of :func:`load_config_or_exit`, the way every service command reads its config."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from ks3sync.config import Config, ConfigError, load_config

EXIT_CONFIG = 2  # the same status click uses for usage errors


def load_config_or_exit(path: Path, *, check_sources: bool = True) -> Config:
    """Load ``path``; on error print the one-line reason and exit 2. Warnings go to stderr."""
    try:
        config = load_config(path, check_sources=check_sources)
    except ConfigError as exc:
        click.echo(f"ks3sync: error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    for warning in config.warnings:
        click.echo(f"ks3sync: warning: {warning}", err=True)
    return config


def check_key_files(config: Config) -> None:
    """Each sync's encryption key file must hold a usable key (read here, never printed)."""
    import warnings

    from ks3sync.crypto.errors import KeyFileError
    from ks3sync.crypto.key import EncryptionKey

    for i, sync in enumerate(config.syncs):
        if sync.encrypt_key_file is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # permissions are already reported by load_config
                EncryptionKey.load(sync.encrypt_key_file)
        except KeyFileError as exc:
            click.echo(f"ks3sync: error: {config.path}: syncs[{i}].encrypt_key_file: {exc}", err=True)
            sys.exit(EXIT_CONFIG)


@click.command("check-config")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The YAML configuration file to validate.",
)
def check_config(config_path: Path) -> None:
    """Validate a configuration file and print the effective configuration (secrets masked)."""
    config = load_config_or_exit(config_path)
    check_key_files(config)
    click.echo(f"# {config_path}: OK ({len(config.syncs)} sync{'s' if len(config.syncs) != 1 else ''})")
    click.echo(yaml.safe_dump(config.effective(), sort_keys=False, allow_unicode=True), nl=False)
