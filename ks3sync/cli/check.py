"""``ks3sync check SRC DST``: compare a local folder and ks3://bucket/prefix (either order) without
transferring anything: missing (in SRC, not in DST), extra (in DST, not in SRC) and differing entries.

Wires the parts together (config, the journal's records when it has this pair, client, KS3Store,
``check.run_check``) and presents the verdicts: one line per entry that is not equal on stdout as it is
found (every entry with ``-v``), a summary line on stderr, or one JSON document with ``--json``.
Exit 0 equal, 1 something differs, is missing or extra, or could not be compared, 2 usage/configuration.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ks3sync.cli.common import (
    ENDPOINT_HELP,
    EXIT_FAILED,
    EXIT_OK,
    Target,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    load_encryption_key,
    mirror_former_name,
    mirror_sync_name,
    open_client,
    parse_target,
    resolve_connection,
    setup_logging,
    split_mirror_args,
)
from ks3sync.cli.mirror import _matching_sync, _Settings
from ks3sync.cli.network import network_options, network_settings
from ks3sync.cli.options import exclude_options
from ks3sync.cli.output import line

if TYPE_CHECKING:
    from ks3sync.check import CheckResult, Verdict
    from ks3sync.model import SyncedEntry


@click.command(
    "check",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Compare SRC and DST (a local folder and ks3://bucket/prefix, in either order) without transferring "
    "anything. Lists entries missing from DST, extra in DST and differing (size, then MD5 / CRC-64 / "
    "integrity tag / plaintext MD5, whatever the listing and one HEAD allow; --download reads the objects "
    "back, decrypting them). Exit status: 0 equal; 1 something differs, is missing or extra, or could not "
    "be compared; 2 usage or configuration error.",
)
@click.argument("src")
@click.argument("dst")
@click.option("--endpoint", help=ENDPOINT_HELP)
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="The YAML config the daemon uses."
)
@click.option(
    "--state-db",
    type=click.Path(path_type=Path),
    help="The journal whose records prove encrypted objects (default: XDG state dir; never created).",
)
@exclude_options
@click.option(
    "--encrypt-key",
    type=click.Path(path_type=Path),
    help="16-byte key file: the objects are client-side encrypted with it.",
)
@click.option(
    "--require-integrity",
    is_flag=True,
    help="With --encrypt-key, an encrypted object without ks3sync's integrity tag (SDK-written) differs.",
)
@click.option(
    "--versions-prefix",
    metavar="PREFIX",
    help="Where the sync keeps versions, relative to the "
    "target: not compared, like .versions/ (default: the --config sync's).",
)
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links (with loop detection).")
@click.option(
    "--jobs", type=click.IntRange(1, 256), help="Files hashed / objects read in parallel (default 8)."
)
@click.option("--download", is_flag=True, help="Read every object back and compare it byte for byte.")
@click.option("--size-only", is_flag=True, help="Compare sizes only: no hashing, no HEAD.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='One JSON document on stdout: counts and lists, or {"error": ..., "exit": N} on a fatal error.',
)
@click.option(
    "-v", "--verbose", count=True, help="A line for equal entries too, with what was compared (-vv: debug)."
)
@network_options
@click.pass_context
@handle_errors
def check(ctx: click.Context, src: str, dst: str, **flags: Any) -> None:
    from ks3sync.cli.output import set_json_errors, warning

    set_json_errors(flags["as_json"])
    setup_logging(flags["verbose"] - 1)
    if flags["download"] and flags["size_only"]:
        die("--download and --size-only cannot be combined")
    local_arg, target_arg, local_is_source = split_mirror_args(src, dst)
    target = parse_target(target_arg, what="DST" if local_is_source else "SRC")
    config = load_config_file(flags["config_path"])
    for message in config.warnings if config is not None else ():
        warning(message)
    local_root = Path(local_arg).expanduser().absolute()
    if not local_root.is_dir():
        what = "SRC" if local_is_source else "DST"
        die(
            f"{what}: {local_arg}: not a folder"
            if local_root.exists()
            else f"{what}: {local_arg}: no such folder"
        )
    settings = _CheckSettings(ctx, flags, config, _matching_sync(config, local_root, target))
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(flags["endpoint"], config, state_dir)
    network = network_settings(
        config, proxy=flags["proxy"], no_proxy=flags["no_proxy"], ca_bundle=flags["ca_bundle"]
    )
    state_db = Path(flags["state_db"] or state_dir / "journal.db").absolute()
    opts = settings.check_options(local_is_source, state_paths=(state_db, state_dir.absolute()))

    from ks3sync.check import run_check
    from ks3sync.store.ks3store import KS3Store

    show = _Printer(verbose=flags["verbose"] > 0) if not flags["as_json"] else None
    with (
        _journal_records(state_db, local_root, target) as records,
        open_client(conn, state_dir, jobs=opts.jobs, network=network) as client,
    ):
        store = KS3Store(client, target.bucket, target.prefix)
        result = run_check(store, local_root, opts, records=records, on_verdict=show)
    _report(result, src, dst, flags)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


class _CheckSettings(_Settings):
    """mirror's precedence (flag, then the matching sync of --config, then the config's transfer
    section), for the options check shares with mirror."""

    def check_options(self, local_is_source: bool, *, state_paths: tuple[Path, ...]) -> Any:
        from ks3sync.check import CheckOptions, CompareOptions

        flags = self.flags
        transfer_cfg = self.config.transfer if self.config is not None else None
        key_file = flags["encrypt_key"] or (self.sync.encrypt_key_file if self.sync is not None else None)
        require_integrity = bool(self._sync_value("require_integrity", "require_integrity", False))
        if key_file is None and require_integrity:
            die("--require-integrity: only means something with --encrypt-key (or a sync's encrypt_key_file)")
        compare = CompareOptions(
            key=load_encryption_key(key_file) if key_file is not None else None,
            require_tag=require_integrity,
            size_only=bool(flags["size_only"]),
            download=bool(flags["download"]),
            local_is_source=local_is_source,
            part_sizes=(transfer_cfg.part_size,) if transfer_cfg is not None else (),
        )
        return CheckOptions(
            compare=compare,
            jobs=flags["jobs"] or (transfer_cfg.jobs if transfer_cfg is not None else 8),
            excludes=tuple(self._sync_value("exclude", "excludes", ())),
            exclude_from=tuple(Path(p) for p in self._sync_value("exclude_from", "exclude_from", ())),
            follow_symlinks=bool(self._sync_value("follow_symlinks", "follow_symlinks", False)),
            state_paths=state_paths,
            versions=self._versions(),
        )

    def _versions(self) -> Any:
        """The versions area mirror keeps under this target: never compared, like ``.versions/``."""
        from ks3sync.cli.versioning import versions_prefix
        from ks3sync.config import VersionsConfig

        if self.flags["versions_prefix"] is not None:
            return VersionsConfig(prefix=versions_prefix(self.flags["versions_prefix"], "--versions-prefix"))
        return self.sync.versions if self.sync is not None else None


@contextlib.contextmanager
def _journal_records(state_db: Path, local_root: Path, target: Target) -> Iterator[Iterable[SyncedEntry]]:
    """The journal's records of this folder and prefix, in path order, if a journal exists and knows the
    pair (a mirror of it, or a configured sync); otherwise none. Never creates or changes a journal (it is
    opened read-only, D26: an older one is not upgraded but skipped); an unusable one is a warning, not an
    error (the records only save requests)."""
    if not state_db.is_file():
        yield ()
        return
    from ks3sync.journal import Journal, JournalError

    try:
        journal = Journal.open(state_db, read_only=True)
    except JournalError as exc:
        from ks3sync.cli.output import warning

        warning(f"{exc}; comparing without the journal's records")
        yield ()
        return
    try:
        sync_id = _sync_of(journal, local_root, target)
        if sync_id is None:
            yield ()
            return
        records = journal.iter_synced_entries(sync_id)
        try:
            yield records
        finally:
            records.close()
    finally:
        journal.close()


def _sync_of(journal: Any, local_root: Path, target: Target) -> int | None:
    """The pair's sync: the mirror of it (named by folder and prefix, D16), else one an older ks3sync
    named ``<that> @ <endpoint>`` (the latest registered; check renames nothing, it only reads),
    else any sync of the same folder and prefix. A record speaks for an object only when the listing
    shows the very ETag and size it recorded, and an ETag is a content hash, so a record written
    through another endpoint cannot vouch for different content."""
    name, former = mirror_sync_name(local_root, target), mirror_former_name(local_root, target)
    pair = (str(local_root), target.bucket, target.prefix)
    same = [sync for sync in journal.syncs() if (sync.source, sync.bucket, sync.prefix) == pair]
    for matches in (
        [s for s in same if s.name == name],
        [s for s in same if s.name.startswith(former)],
        same,
    ):
        if matches:
            return int(max(matches, key=lambda s: s.id).id)
    return None


# --------------------------------------------------------------------------------------------------
# output


def verdict_line(verdict: Verdict) -> str:
    """``STATUS  path (detail)``, raw: ``output.line`` escapes it where it is written."""
    status = verdict.status.value
    if verdict.status.value == "equal":
        detail = ", ".join(method.value for method in verdict.compared)
    else:
        detail = verdict.detail
    return f"{status:<7} {verdict.path}" + (f" ({detail})" if detail else "")


class _Printer:
    """Prints each verdict as it is given: those that are not equal, and with -v every one (escaped,
    docs/decisions.md D12)."""

    def __init__(self, *, verbose: bool) -> None:
        self._verbose = verbose

    def __call__(self, verdict: Verdict) -> None:
        if self._verbose or verdict.status.value != "equal":
            line(verdict_line(verdict))


def summary_line(result: CheckResult) -> str:
    from ks3sync.check import Status

    counts = result.counts
    line = (
        f"{counts[Status.EQUAL]} equal, {counts[Status.DIFFER]} differ, {counts[Status.MISSING]} missing, "
        f"{counts[Status.EXTRA]} extra, {counts[Status.ERROR]} errors"
    )
    if counts[Status.UNVERIFIED]:
        line += f", {counts[Status.UNVERIFIED]} unverified"
    return line


def json_document(result: CheckResult, src: str, dst: str, flags: dict[str, Any]) -> dict[str, Any]:
    from ks3sync.check import Status

    by_status: dict[Status, list[Verdict]] = {status: [] for status in Status}
    for verdict in result.entries:
        by_status[verdict.status].append(verdict)
    counts = {("errors" if s is Status.ERROR else s.value): result.counts[s] for s in Status}
    return {
        "src": src,
        "dst": dst,
        "mode": "download" if flags["download"] else "size-only" if flags["size_only"] else "metadata",
        "ok": result.ok,
        "counts": counts,
        "differ": [
            {"path": v.path, "detail": v.detail, "compared": [m.value for m in v.compared]}
            for v in by_status[Status.DIFFER]
        ],
        "missing": [v.path for v in by_status[Status.MISSING]],
        "extra": [v.path for v in by_status[Status.EXTRA]],
        "errors": [{"path": v.path, "error": v.detail} for v in by_status[Status.ERROR]],
        "unverified": [{"path": v.path, "detail": v.detail} for v in by_status[Status.UNVERIFIED]],
        "verified_by": {
            method.value: n for method, n in sorted(result.verified_by.items(), key=lambda i: i[0].value)
        },
        "notes": [{"path": path, "reason": reason} for path, reason in result.notes],
        "seconds": round(result.seconds, 3),
    }


def _report(result: CheckResult, src: str, dst: str, flags: dict[str, Any]) -> None:
    from ks3sync.check import Status
    from ks3sync.cli.output import note
    from ks3sync.display import json_text

    if flags["as_json"]:
        click.echo(json_text(json_document(result, src, dst, flags), sort_keys=True))
        return
    for path, reason in result.notes:
        note(f"skipped {path}: {reason}")
    unverified = result.counts[Status.UNVERIFIED]
    if unverified:
        entries = "entry has" if unverified == 1 else "entries have"
        note(f"{unverified} {entries} equal sizes but could not be verified without --download")
    line(summary_line(result), err=True)
