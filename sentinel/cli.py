"""The ``sentinel`` command: run the platform, manage models and cameras."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from sentinel.config import CameraConfig, Settings, load_settings

if TYPE_CHECKING:
    from sentinel.client import SentinelClient

logger = logging.getLogger("sentinel")

DEBIAN_SAMPLE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def find_sample(settings: Settings) -> Path:
    """The demo video: the data dir's copy, or Debian's opencv-doc one."""
    for candidate in (settings.data_dir / "samples" / "vtest.avi", DEBIAN_SAMPLE):
        if candidate.is_file():
            return candidate
    raise click.ClickException(
        "no sample video: install Debian's opencv-doc package (`make sample` does it) or put "
        f"a video at {settings.data_dir / 'samples' / 'vtest.avi'}"
    )


def demo_camera(sample: Path) -> CameraConfig:
    return CameraConfig(
        id="demo",
        name="Demo (PETS09 pedestrians)",
        description="A university car park and footpath, seen from a first-floor window.",
        source=str(sample),
        record={"mode": "events"},  # an event's clip: GET /api/v1/events/{id}/clip.mp4
        # The paved area in the middle of the view, right of the lamp post, and a line across
        # the walkway on the left, drawn downwards so that walking right crosses it "in". See
        # them on GET /api/v1/cameras/demo/latest.jpg?overlay=zones.
        zones=[
            {
                "name": "footpath",
                "polygon": [
                    [0.43, 0.42],
                    [0.78, 0.36],
                    [1.0, 0.45],
                    [1.0, 0.82],
                    [0.72, 0.72],
                    [0.45, 0.55],
                ],
            }
        ],
        lines=[{"name": "walkway", "a": [0.3, 0.28], "b": [0.3, 0.48]}],
    )


def demo_rules() -> list[dict[str, Any]]:
    """The demo's rules, on its zone and line (``POST /api/v1/rules`` takes each without
    its ``id``: the server assigns one)."""
    return [
        {
            "id": "demo-walkway-crossing",
            "name": "Person crossing the walkway",
            "cameras": ["demo"],
            "severity": "medium",
            "conditions": {"labels": ["person"], "event": "cross", "line": "walkway"},
            "cooldown_s": 60,
        },
        {
            "id": "demo-footpath-loitering",
            "name": "Loitering on the footpath",
            "cameras": ["demo"],
            "severity": "high",
            "conditions": {
                "labels": ["person"],
                "event": "dwell",
                "zone": "footpath",
                "min_dwell_s": 20,
            },
            "cooldown_s": 300,
        },
    ]


def _ensure_demo_rules(settings: Settings) -> None:
    """The demo's rules, created once (an operator's edits and deletions are kept)."""
    from sentinel.domain.rule_model import Rule
    from sentinel.store.rule_repo import RuleRepository

    rules = RuleRepository(_store(settings))
    if rules.versions("demo-walkway-crossing") or rules.list():
        return
    for body in demo_rules():
        rules.create(Rule.model_validate(body), "demo")
    click.echo("created the demo's rules (GET /api/v1/rules)")


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _ensure_model(settings: Settings) -> None:
    path = settings.onnx_model_path()
    if settings.detector.model_path is None and not path.is_file():
        from sentinel.models.files import export_yolov8n

        click.echo(f"exporting the bundled YOLOv8n to {path} (once)...")
        export_yolov8n(path)
    from sentinel.platform import wants_embedded_llm

    gguf = settings.gguf_model_path()
    if wants_embedded_llm(settings) and settings.agent.llm.model_path is None:
        from sentinel.models.gguf import assemble_qwen_gguf

        if not gguf.is_file():
            click.echo(f"assembling the bundled Qwen2.5 0.5B GGUF at {gguf} (once)...")
        assemble_qwen_gguf(gguf)
    if settings.voice.enabled and settings.voice.model_path is None:
        from sentinel.models.whisper import assemble_whisper

        whisper = settings.whisper_model_path()
        if not whisper.is_dir():
            click.echo(f"assembling the bundled Whisper base at {whisper} (once)...")
        assemble_whisper(whisper)


def _run_until_signal(settings: Settings) -> None:
    from sentinel import platform as runtime
    from sentinel.models.files import ModelFileError

    stop_event = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        # A group signal reaches make, the shell and us together, and a terminal may send a
        # second Ctrl-C: the first one starts the stop, the others are told to wait for it.
        name = signal.Signals(signum).name
        if stop_event.is_set():
            click.echo(f"received {name} again: already stopping")
            return
        click.echo(f"\nreceived {name}, stopping...")
        stop_event.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        _ensure_model(settings)
        # Before anything starts (the Ray head included): a tampered model stops us here.
        runtime.verify_models(settings)
    except ModelFileError as exc:  # a missing or tampered model: the reason, not a traceback
        raise click.ClickException(str(exc)) from exc
    head = None
    if not os.environ.get("RAY_ADDRESS"):
        # Our own head, out of our process group (see LocalHead), stopped by us, last.
        head = runtime.LocalHead.start(
            settings.data_dir / "logs" / "ray-head.log", env=runtime.head_env(settings)
        )
        click.echo(f"local Ray cluster at {head.address} (head pid {head.process.pid})")
    supervisor = None
    try:
        runtime.connect_ray(settings, head.address if head is not None else None)
        # ray.init installs its own SIGTERM handler (it dumps a stack and dies): take it back.
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        supervisor = runtime.start(settings)
        url = f"http://{settings.host}:{settings.port}"
        click.echo(
            f"Sentinel is running at {url}  (API docs: {url}/docs, events: {url}/api/v1/events)"
        )
        click.echo(f"data dir: {settings.data_dir}")
        click.echo(_dashboard_line(url))
        sys.stdout.flush()
        while not stop_event.wait(0.2):
            pass
    finally:
        t0 = time.monotonic()
        runtime.shutdown(settings, supervisor, head)
    click.echo(f"stopped in {time.monotonic() - t0:.1f}s")
    # Everything is stopped and closed; what is left is the interpreter's own teardown, which
    # spent 7-10 s here garbage-collecting Ray's objects once the cluster was gone.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _dashboard_line(url: str) -> str:
    from sentinel.dashboard.webapp import APP_DIR, BUILD_MANIFEST

    if (APP_DIR / BUILD_MANIFEST).is_file():
        return f"dashboard: {url}/  (sign in with your user, e.g. the demo's admin)"
    return f"dashboard: not built ({APP_DIR}): `make web` builds it; the API works without it"


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Sentinel: AI video surveillance on Ray."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--port", type=int, default=None, help="HTTP port (default 8000).")
def up(config: Path | None, port: int | None) -> None:
    """Start (or join, with RAY_ADDRESS) a Ray cluster and run the cameras of --config."""
    _run_until_signal(_settings(config, port=port))


@main.command("serve-config")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--config-path",
    default=None,
    help="Where the config file is on the cluster's nodes (default: --config as given).",
)
def serve_config_command(config: Path | None, config_path: str | None) -> None:
    """Print the Serve config (YAML) for `serve deploy` or a KubeRay RayService."""
    from sentinel.platform import serve_config

    settings = _settings(config)
    where = config_path or (str(config) if config else "/etc/sentinel/sentinel.yaml")
    click.echo(yaml.safe_dump(serve_config(settings, where), sort_keys=False), nl=False)


@main.command()
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--address", default=None, help="Ray address (default: RAY_ADDRESS, else auto).")
def actors(config: Path | None, address: str | None) -> None:
    """Start the platform's actors (supervisor, cameras, agent worker...) on a cluster whose
    Serve app was deployed with `serve deploy` or KubeRay (idempotent)."""
    import ray

    from sentinel.platform import start_actors

    settings = _settings(config)
    ray.init(
        address=address or os.environ.get("RAY_ADDRESS") or "auto", namespace=settings.namespace
    )
    try:
        start_actors(settings)
    finally:
        ray.shutdown()
    click.echo("platform actors running")


@main.command()
@click.option("--port", type=int, default=None, help="HTTP port (default 8000).")
@click.option(
    "--webhook",
    default=None,
    envvar="SENTINEL_DEMO_WEBHOOK",
    help="Also notify this webhook URL of every alert (e.g. `sentinel notify listen`'s).",
)
def demo(port: int | None, webhook: str | None) -> None:
    """Run with a built-in config: one camera looping the sample video.

    Alerts are published to MQTT (127.0.0.1:1883, topics sentinel/events and sentinel/reviews)
    when a broker answers there, and POSTed to ``--webhook`` when given.
    """
    settings = _settings(None, port=port)
    sample = find_sample(settings)
    settings = settings.model_copy(update={"cameras": [demo_camera(sample)]})
    if webhook:
        settings = _allow_webhook(settings, webhook)
    _ensure_demo_admin(settings)
    _ensure_demo_rules(settings)
    _ensure_demo_subscriptions(settings, webhook)
    _run_until_signal(settings)


def _allow_webhook(settings: Settings, url: str) -> Settings:
    """The demo's webhook may be plain http on this machine (the guard refuses it otherwise)."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    notify = settings.notify.model_copy(
        update={"allow_http": True, "allow_hosts": [*settings.notify.allow_hosts, host]}
    )
    return settings.model_copy(update={"notify": notify})


def _mqtt_broker_up(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _ensure_demo_subscriptions(settings: Settings, webhook: str | None) -> None:
    """MQTT (every change, Frigate's shape) when a broker answers; the webhook when given."""
    from sentinel.store.notify_repo import NotifyRepository

    repo = NotifyRepository(_store(settings))
    mqtt = settings.notify.mqtt
    wanted: dict[str, dict[str, Any]] = {}
    if mqtt.enabled and _mqtt_broker_up(mqtt.host, mqtt.port):
        wanted["demo-mqtt"] = {
            "name": "Demo: every alert change to MQTT",
            "recipient": "home-automation",
            "channel": "mqtt",
            "target": "-",
            "kinds": ["new", "update", "end"],
        }
        topic = f"{mqtt.prefix}/#"
        click.echo(f"alerts go to MQTT: mosquitto_sub -h {mqtt.host} -t '{topic}' -v")
    else:
        click.echo(f"no MQTT broker on {mqtt.host}:{mqtt.port}: alerts are not published there")
    if webhook:
        wanted["demo-webhook"] = {
            "name": "Demo: webhook",
            "recipient": "demo-webhook",
            "channel": "webhook",
            "target": webhook,
        }
        click.echo(f"alerts are POSTed to {webhook} (signed, X-Sentinel-Signature)")
    for sub_id, body in wanted.items():
        if repo.get_subscription(sub_id) is None:
            repo.put_subscription(sub_id, body, "demo", create=True)
        else:
            repo.put_subscription(sub_id, body, "demo", create=False)


def _store(settings: Settings) -> Any:
    from sentinel.store.db import make_engine, migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    return engine


def create_admin(settings: Settings, username: str, password: str) -> str:
    """Creates an admin user; returns its id. Raises ClickException on a weak password."""
    from sentinel.gateway.passwords import Passwords, WeakPassword, validate_password
    from sentinel.store.security_repo import UserExists, UserRepository

    try:
        validate_password(password, username=username)
    except WeakPassword as exc:
        raise click.ClickException(str(exc)) from exc
    users = UserRepository(_store(settings))
    try:
        user = users.create(username.lower(), Passwords().hash(password), "admin", None)
    except UserExists as exc:
        raise click.ClickException(f"user {username} already exists") from exc
    return user.id


def _ensure_demo_admin(settings: Settings) -> None:
    """The demo's admin: created with a random password, printed this once."""
    import secrets as _secrets

    from sentinel.store.security_repo import UserRepository

    if UserRepository(_store(settings)).count_admins() > 0:
        click.echo("admin user exists (its password was printed when it was created)")
        return
    password = _secrets.token_urlsafe(18)
    create_admin(settings, "admin", password)
    click.echo(f"created user `admin` with password: {password}   (shown once; keep it)")


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create-admin")
@click.option("--username", default="admin", show_default=True)
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Read the password from this file instead of prompting.",
)
def users_create_admin(username: str, password_file: Path | None) -> None:
    """Create an admin user (there is no default password anywhere)."""
    settings = _settings(None)
    if password_file is not None:
        password = password_file.read_text().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    create_admin(settings, username, password)
    click.echo(f"created admin {username}")


@main.group()
def keys() -> None:
    """Token signing keys."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Start signing with a new key; tokens signed with the old one stay valid until they
    expire, then `sentinel keys rotate` prunes keys retired longer ago than a token lives."""
    from datetime import UTC, datetime, timedelta

    from sentinel.gateway.keys import KeyRing

    settings = _settings(None)
    if settings.auth.jwt_private_keys:
        raise click.ClickException(
            "signing keys come from settings (auth.jwt_private_keys): rotate them there"
        )
    ring = KeyRing.load_or_create(settings.data_dir / "keys" / "jwt")
    now = datetime.now(UTC)
    pruned = ring.prune(now - timedelta(seconds=settings.auth.access_ttl_s + 60))
    kid = ring.rotate(now)
    click.echo(f"new signing key {kid}; pruned {len(pruned)} expired key(s)")


@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


_CONFIG_OPTION = click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The YAML config (for the database and audit_anchors); default: env only.",
)


@audit.command("verify")
@_CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_verify(config: Path | None, as_json: bool) -> None:
    """Check the audit log's hash chain, its head and every anchor in the Object Lock bucket
    (when audit_anchors is enabled); exit 1 naming the first entry that disagrees."""
    from sentinel.retention.anchoring import verification_dict, verify_audit
    from sentinel.store.audit_anchors import AnchorStoreError, make_anchor_store
    from sentinel.store.audit_repo import AuditRepository

    settings = _settings(config)
    repo = AuditRepository(_store(settings))
    anchors = make_anchor_store(settings.audit_anchors)
    try:
        report = verify_audit(repo, anchors)
    except AnchorStoreError as exc:
        raise click.ClickException(f"cannot read the audit anchors: {exc}") from exc
    data = verification_dict(report, anchored=anchors is not None)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    elif report.ok:
        click.echo(f"audit log intact: {report.checked} entries")
        last = data["last_anchor"]
        if anchors is None:
            click.echo(
                "no audit anchors configured (audit_anchors): a rewrite with recomputed "
                "hashes, or dropped newest entries with the head row fixed, would pass",
                err=True,
            )
        elif last is None:
            click.echo("no anchor written yet: run `sentinel audit anchor`", err=True)
        else:
            click.echo(
                f"agrees with {report.anchors_agreeing} anchor(s); newest: entry {last['seq']} "
                f"at {last['at']} ({last['lock_mode'] or 'NOT LOCKED'} until "
                f"{last['locked_until']}); {report.unanchored} entries after it"
            )
        if report.anchors_unlocked:
            click.echo(f"warning: {report.anchors_unlocked} anchor(s) are not locked", err=True)
    if not report.ok:
        where = (
            f"at entry {report.first_bad_seq}"
            if report.first_bad_seq is not None
            else "(no single entry)"
        )
        if not as_json:
            click.echo(
                f"audit log ALTERED {where}: {report.reason} ({report.checked} trusted)",
                err=True,
            )
            for bad in report.invalid_anchors:
                click.echo(f"  invalid anchor: {bad}", err=True)
        sys.exit(1)


@audit.command("anchor")
@_CONFIG_OPTION
def audit_anchor(config: Path | None) -> None:
    """Anchor the audit chain's head in the Object Lock bucket now (the retention actor also
    does it every audit_anchors.interval_s)."""
    from sentinel.retention.anchoring import AnchorRefusedError, AuditAnchorer
    from sentinel.store.audit_anchors import AnchorStoreError, make_anchor_store
    from sentinel.store.audit_repo import AuditRepository

    settings = _settings(config)
    anchors = make_anchor_store(settings.audit_anchors)
    if anchors is None:
        raise click.ClickException(
            "audit anchoring is not enabled: set audit_anchors.enabled and audit_anchors.bucket"
        )
    repo = AuditRepository(_store(settings))
    anchorer = AuditAnchorer(repo, anchors, create_bucket=settings.audit_anchors.create_bucket)
    try:
        result = anchorer.anchor()
    except AnchorRefusedError as exc:
        raise click.ClickException(f"not anchored: {exc} (see `sentinel audit verify`)") from exc
    except AnchorStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if result.anchor is None:
        click.echo(f"nothing to anchor: {result.skipped}")
        return
    anchor = result.anchor
    click.echo(
        f"anchored entry {anchor.seq} ({anchor.hash[:16]}...) in {anchor.source}, "
        f"{anchor.lock_mode} until {anchor.locked_until}"
    )


@main.group()
def privacy() -> None:
    """GDPR subject requests (access, erasure), run here on the data dir's stores."""


def _subject_stores(settings: Settings, direct_index: bool) -> Any:
    """Every store of the deployment, opened in this process. The embedded search index only
    with ``direct_index`` (it belongs to the running platform's indexer otherwise: the
    erasure's database step queues the index deletions, which the indexer applies)."""
    from sentinel.retention.archive import make_archive_store
    from sentinel.retention.requests import SubjectStores
    from sentinel.store.audit_repo import AuditRepository
    from sentinel.store.dataset_repo import DatasetRepo
    from sentinel.store.s3 import make_object_store
    from sentinel.store.subject_repo import SubjectData
    from sentinel.train.erasure import DatasetEraser, MlflowArtifacts

    engine = _store(settings)
    objects = make_object_store(settings.objects, settings.data_dir)
    index = appearance = None
    if direct_index and settings.search.enabled:
        from sentinel.search.index import APPEARANCE, VectorIndex

        path, url = settings.search_index_path(), settings.search.chroma_url
        index = VectorIndex(path, url=url)
        appearance = VectorIndex(path, url=url, collection=APPEARANCE)
    return SubjectStores(
        engine=engine,
        objects=objects,
        archive=(
            make_archive_store(settings.archive, settings.data_dir)
            if settings.archive.enabled
            else None
        ),
        index=index,
        appearance=appearance,
        datasets=DatasetEraser(objects, DatasetRepo(engine), SubjectData(engine)),
        artifacts=MlflowArtifacts(settings.mlflow_tracking_uri()),
        audit=AuditRepository(engine),
    )


def _print_request(rec: Any, as_json: bool) -> None:
    """Prints a request's report; exits 1 when it failed, 3 when holds kept items."""
    if as_json:
        keys = ("id", "kind", "status", "subject", "steps", "report", "archive_key")
        click.echo(json.dumps({k: getattr(rec, k) for k in keys}, indent=2, default=str))
    else:
        click.echo(f"request {rec.id}: {rec.status}")
        for step in rec.steps:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(step["counts"].items()) if v)
            click.echo(f"  {step['store']:<13} {step['status']:<8} {counts}")
            for held in step["held"][:20]:
                click.echo(f"    held: {held['id']} (hold {held['hold_id']})")
            for error in step["errors"][-1:]:
                click.echo(f"    error: {error}")
    if rec.status == "failed":
        raise click.exceptions.Exit(1)
    if rec.status == "partial":
        raise click.exceptions.Exit(3)


def _aware(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=name) from exc
    if when.tzinfo is None:
        raise click.BadParameter("give a timezone (e.g. +00:00 or Z)", param_hint=name)
    return when


@privacy.command("erase")
@click.option("--event", "events", multiple=True, help="An event id (repeatable).")
@click.option("--incident", "incidents", multiple=True, help="An incident id (repeatable).")
@click.option("--camera", help="A camera id, with --start and --end.")
@click.option("--start", help="From (ISO 8601 with a zone).")
@click.option("--end", help="To (ISO 8601 with a zone).")
@click.option("--access", is_flag=True, help="An access request (a zip) instead of erasure.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Access: the zip.")
@click.option(
    "--direct-index",
    is_flag=True,
    help="Delete the search entries in this process's embedded index (stop the platform "
    "first); default: queued for the running indexer.",
)
@click.option("--by", default="cli", show_default=True, help="Who asks (the audit's actor).")
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON.")
@_CONFIG_OPTION
def privacy_erase(
    events: tuple[str, ...],
    incidents: tuple[str, ...],
    camera: str | None,
    start: str | None,
    end: str | None,
    access: bool,
    out: Path | None,
    direct_index: bool,
    by: str,
    as_json: bool,
    config: Path | None,
) -> None:
    """Erase a data subject from every store (or, with --access, archive everything about
    it): events, incidents, alerts, snapshots, clips, search entries, face prints, annotation
    items, dataset versions and MLflow artifacts. Legal holds keep what they cover (listed;
    exit status 3); a failed store exits 1 and `sentinel privacy resume ID` continues."""
    from sentinel.retention.requests import RequestRunner, SubjectTooLargeError
    from sentinel.retention.subjects import RequestKind, Subject, new_steps
    from sentinel.store.subject_repo import PrivacyRequestRepository

    try:
        if camera or start or end:
            if events or incidents:
                raise ValueError("give --camera/--start/--end or --event/--incident, not both")
            subject = Subject("range", camera, _aware(start, "--start"), _aware(end, "--end"))
        else:
            subject = Subject("ids", event_ids=tuple(events), incident_ids=tuple(incidents))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    settings = _settings(config)
    stores = _subject_stores(settings, direct_index)
    kind: RequestKind = "access" if access else "erasure"
    rec = PrivacyRequestRepository(stores.engine).create(
        kind=kind,
        subject=subject.to_json(),
        steps=[s.to_json() for s in new_steps(kind)],
        requested_by=by,
    )
    try:
        done = RequestRunner(stores).run(rec.id)
    except SubjectTooLargeError as exc:
        raise click.ClickException(str(exc)) from exc
    if access and out is not None and done.archive_key:
        out.write_bytes(stores.objects.get(done.archive_key))
        click.echo(f"archive written to {out}")
    _print_request(done, as_json)


@privacy.command("resume")
@click.argument("request_id")
@click.option("--direct-index", is_flag=True, help="As for erase.")
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON.")
@_CONFIG_OPTION
def privacy_resume(request_id: str, direct_index: bool, as_json: bool, config: Path | None) -> None:
    """Run a request's unfinished steps again (after a failure, or a released hold)."""
    from sentinel.retention.requests import RequestBusy, RequestRunner

    stores = _subject_stores(_settings(config), direct_index)
    try:
        done = RequestRunner(stores).run(request_id)
    except KeyError as exc:
        raise click.ClickException(f"no privacy request {request_id}") from exc
    except RequestBusy as exc:
        raise click.ClickException(str(exc)) from exc
    _print_request(done, as_json)


@main.group()
def objects() -> None:
    """The object store (snapshots, recordings, exports, datasets)."""


@objects.command("rotate-key")
@_CONFIG_OPTION
@click.option(
    "--generate",
    is_flag=True,
    help="First put a new random master key first in the key file (not with master_keys "
    "from settings). To resume an interrupted rotation, run again without it.",
)
@click.option(
    "--retire",
    is_flag=True,
    help="After a complete rotation with no failure, drop the older keys from the key file.",
)
@click.option(
    "--encrypt-plain", is_flag=True, help="Also encrypt objects stored before encryption was on."
)
@click.option("--prefix", default="", help="Only objects under this key prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def objects_rotate_key(
    config: Path | None,
    generate: bool,
    retire: bool,
    encrypt_plain: bool,
    prefix: str,
    as_json: bool,
) -> None:
    """Rewrap every object's data key under the newest master key (headers only: the
    encrypted bodies stay byte for byte the same). Objects already under it are skipped, so
    a rerun resumes an interrupted rotation; exit 1 if an object could not be rewrapped."""
    from sentinel.store.envelope import EncryptedObjectStore, rotate_master_key
    from sentinel.store.object_keys import KeyFileError, add_key, key_file_path, retire_keys
    from sentinel.store.s3 import ObjectStoreError, make_object_store

    settings = _settings(config)
    enc = settings.objects.encryption
    if not enc.active(settings.objects.kind):
        raise click.ClickException(
            "objects are not encrypted: set objects.encryption.enabled: true first"
        )
    key_file = key_file_path(enc.key_file, settings.data_dir)
    from_settings = bool(enc.master_keys)
    if (generate or retire) and from_settings:
        raise click.ClickException(
            "the master keys come from settings (objects.encryption.master_keys): put the new "
            "key first there, run rotate-key, then remove the old ones there"
        )
    try:
        if generate:
            click.echo(f"new master key {add_key(key_file).hex()} in {key_file}", err=True)
        store = make_object_store(settings.objects, settings.data_dir)
        assert isinstance(store, EncryptedObjectStore)  # encryption is active
        report = rotate_master_key(store, prefix, encrypt_plain=encrypt_plain)
    except (KeyFileError, ValueError, ObjectStoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    retired: list[str] = []
    if retire and report.ok and not prefix:
        retired = [kid.hex() for kid in retire_keys(key_file)]
    data = {
        "master_key": store.keys.current_id.hex(),
        "rewrapped": report.rewrapped,
        "already_current": report.current,
        "encrypted": report.encrypted,
        "plain": report.plain,
        "vanished": report.vanished,
        "failed": [{"key": key, "error": error} for key, error in report.failed],
        "retired": retired,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(
            f"master key {data['master_key']}: {report.rewrapped} rewrapped, {report.current} "
            f"already under it, {report.encrypted} plain encrypted, {report.plain} plain left, "
            f"{report.vanished} vanished, {len(report.failed)} failed"
        )
        for key, error in report.failed[:20]:
            click.echo(f"  {key}: {error}", err=True)
        if retired:
            click.echo(f"retired master key(s) {', '.join(retired)}")
    if not report.ok:
        if retire:
            click.echo("no key retired: some objects still need the old keys", err=True)
        raise SystemExit(1)
    if retire and prefix:
        click.echo("no key retired: --retire needs a rotation of every object", err=True)


@main.group()
def models() -> None:
    """Detector models: the bundled files, and the registry's versions a running Sentinel
    serves (list, canary, promote, rollback)."""


@models.command("init")
@click.option("--force", is_flag=True, help="Export again even if the file exists.")
def models_init(force: bool) -> None:
    """Verify the bundled models (sha256): export YOLOv8n to ONNX, assemble the Qwen GGUF and
    the Whisper base folder."""
    from sentinel.models.files import ModelFileError, export_yolov8n
    from sentinel.models.gguf import assemble_qwen_gguf
    from sentinel.models.whisper import assemble_whisper

    settings = _settings(None)
    try:
        path = export_yolov8n(settings.models_dir / "yolov8n.onnx", force=force)
        gguf = assemble_qwen_gguf(settings.gguf_model_path(), force=force)
        whisper = assemble_whisper(settings.models_dir / "whisper-base", force=force)
    except ModelFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"detector model ready: {path}")
    click.echo(f"LLM ready: {gguf}")
    click.echo(f"speech-to-text model ready: {whisper}")


@main.group()
def search() -> None:
    """The search index over events and incidents."""


@search.command("backfill")
@click.option(
    "--direct",
    is_flag=True,
    help="Index here and now with the in-process model, and prune entries whose event or "
    "incident is gone. The embedded index must not be open in a running platform then "
    "(stop it first, or use search.chroma_url).",
)
def search_backfill(direct: bool) -> None:
    """Index every stored closed event and incident (idempotent: upserts by id).

    By default they are put on the durable indexing queue, which the running platform's
    indexer drains; --direct indexes them in this process.
    """
    from sentinel.search.service import open_search, queue_backfill

    settings = _settings(None)
    engine = _store(settings)
    if not direct:
        events, incidents = queue_backfill(engine)
        click.echo(f"queued {events} event(s) and {incidents} incident(s) for indexing")
        return
    from sentinel.models.embedder import TextEmbedder
    from sentinel.models.files import ModelFileError
    from sentinel.store.s3 import make_object_store

    try:
        embedder = TextEmbedder(threads=settings.search.threads)
    except ModelFileError as exc:
        raise click.ClickException(str(exc)) from exc
    service = open_search(
        engine,
        settings.search,
        settings.search_index_path(),
        embedder.embed,
        objects=make_object_store(settings.objects, settings.data_dir),
    )
    report = service.backfill()
    drained = service.drain()  # what the queue still held (deletions, newer states)
    click.echo(
        f"indexed {report.upserted} item(s), removed {report.deleted} gone item(s), "
        f"{drained} queued item(s) handled; the index holds {service.index.count()}"
    )


@contextlib.contextmanager
def _api(url: str, *, timeout: float = 30.0, **credentials: Any) -> Iterator[SentinelClient]:
    """A client of ``url`` signed in with ``credentials``, else with SENTINEL_TOKEN (from
    `sentinel login`), SENTINEL_API_KEY or SENTINEL_USERNAME/SENTINEL_PASSWORD; its errors
    become the command's error message."""
    from sentinel.client import Credentials, SentinelAPIError, SentinelClient, SentinelError
    from sentinel.client.errors import describe

    creds = credentials or vars(Credentials.from_env())
    try:
        with SentinelClient(url, timeout=timeout, **creds) as client:
            yield client
    except SentinelAPIError as exc:
        raise click.ClickException(f"{exc.status}: {describe(exc.detail)}") from exc
    except SentinelError as exc:
        raise click.ClickException(str(exc)) from exc


URL_OPTION = click.option(
    "--url",
    default=lambda: os.environ.get("SENTINEL_URL", "http://127.0.0.1:8000"),
    show_default="SENTINEL_URL or http://127.0.0.1:8000",
    help="Where Sentinel's HTTP API listens.",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON, one per line.")


# A canary starts a Serve replica and a promotion waits for the champion's replicas to swap.
MODEL_CHANGE_TIMEOUT_S = 180.0


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_models(overview: Any, as_json: bool) -> None:
    if as_json:
        click.echo(overview.model_dump_json())
        return
    canary = overview.canary
    for v in overview.versions:
        figures = v.figures
        live = (
            f"  frames={figures.frames} det/frame={_fmt(figures.detections_per_frame, '.2f')}"
            f" latency={_fmt(figures.mean_latency_ms, '.0f')}ms"
            f" fp={_fmt(figures.fp_rate, '.2f')} ({figures.judged} judged)"
            if figures is not None
            else ""
        )
        gate = v.tags.get("gate", "-")
        aliases = ",".join(v.aliases) or "-"
        click.echo(f"v{v.version:<4} {aliases:<20} gate={gate:<9} {v.sha256[:12]}{live}")
    if canary is not None:
        where = ", ".join(canary.cameras) or "-"
        click.echo(f"canary: v{canary.version} cameras={where} share={canary.share:g}")
    last = (overview.guard or {}).get("last")
    if last and last.get("reasons"):
        click.echo(f"guard: {'; '.join(last['reasons'])}")


@models.command("list")
@URL_OPTION
@JSON_OPTION
def models_list(url: str, as_json: bool) -> None:
    """The registry's versions, which one is champion or challenger, and the live figures."""
    with _api(url) as client:
        overview = client.models()
    _print_models(overview, as_json)


@models.command("canary")
@URL_OPTION
@JSON_OPTION
@click.argument("version", type=click.IntRange(min=1))
@click.option("--camera", "cameras", multiple=True, help="A camera the challenger serves.")
@click.option(
    "--share", type=click.FloatRange(0.0, 1.0), default=0.0, help="Share of the other frames."
)
def models_canary(
    url: str, as_json: bool, version: int, cameras: tuple[str, ...], share: float
) -> None:
    """Serve VERSION (the challenger) to some cameras and/or a share of frames."""
    if not cameras and share == 0.0:
        raise click.UsageError("give --camera (repeatable) or --share above 0")
    with _api(url, timeout=MODEL_CHANGE_TIMEOUT_S) as client:
        overview = client.model_canary(version, cameras, share)
    _print_models(overview, as_json)


@models.command("promote")
@URL_OPTION
@JSON_OPTION
@click.argument("version", type=click.IntRange(min=1))
def models_promote(url: str, as_json: bool, version: int) -> None:
    """Make VERSION the champion on every camera."""
    with _api(url, timeout=MODEL_CHANGE_TIMEOUT_S) as client:
        overview = client.model_promote(version)
    _print_models(overview, as_json)


@models.command("rollback")
@URL_OPTION
@JSON_OPTION
@click.argument("version", type=click.IntRange(min=1))
def models_rollback(url: str, as_json: bool, version: int) -> None:
    """Roll VERSION back: a canary stops at once, a champion gives way to the one before."""
    with _api(url, timeout=MODEL_CHANGE_TIMEOUT_S) as client:
        overview = client.model_rollback(version)
    _print_models(overview, as_json)


@main.command()
@URL_OPTION
@click.option("--username", required=True)
@click.option("--password", default=None, help="Default: prompted (on stderr).")
@click.option("--otp", default=None, help="One-time code, if MFA is enrolled.")
def login(url: str, username: str, password: str | None, otp: str | None) -> None:
    """Sign in; prints `export SENTINEL_TOKEN=...` (use with eval) for the other commands."""
    if password is None:
        # Prompt on stderr so `eval "$(sentinel login ...)"` captures only the export line.
        password = click.prompt("password", hide_input=True, err=True)
    with _api(url, username=username, password=password, otp=otp) as client:
        client.login()
        click.echo(f"export SENTINEL_TOKEN={client.tokens.access_token}")


@main.command()
@URL_OPTION
def status(url: str) -> None:
    """Health of a running Sentinel and the state of each camera."""
    with _api(url) as client:
        health = client.health()
        cams = client.cameras()
    click.echo(f"ready={health.ready} database={health.database} detector={health.detector}")
    for cam in cams:
        st = cam.status
        err = f"  error: {st.last_error}" if st.last_error else ""
        click.echo(f"{cam.id:<20} {st.state:<13} {cam.source}{err}")


@main.group()
def cameras() -> None:
    """List, add and remove cameras of a running Sentinel."""


@cameras.command("list")
@URL_OPTION
def cameras_list(url: str) -> None:
    with _api(url) as client:
        cams = [c.model_dump(mode="json") for c in client.cameras()]
    click.echo(json.dumps(cams, indent=2))


@cameras.command("add")
@URL_OPTION
@click.option("--id", "camera_id", help="Camera id (a-z, 0-9, _ and -).")
@click.option("--source", help="File path, rtsp:// or http(s):// URL.")
@click.option("--detect-fps", type=float, default=None)
@click.option("--realtime/--no-realtime", default=None)
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A YAML file with the camera's keys (instead of the options).",
)
def cameras_add(
    url: str,
    camera_id: str | None,
    source: str | None,
    detect_fps: float | None,
    realtime: bool | None,
    file: Path | None,
) -> None:
    body: dict[str, Any] = {}
    if file is not None:
        loaded = yaml.safe_load(file.read_text())
        if not isinstance(loaded, dict):
            raise click.ClickException(f"{file} must hold a mapping of camera keys")
        body.update(loaded)
    for key, value in (
        ("id", camera_id),
        ("source", source),
        ("detect_fps", detect_fps),
        ("realtime", realtime),
    ):
        if value is not None:
            body[key] = value
    with _api(url) as client:
        cam = client.add_camera(body)
    click.echo(f"added {cam.id}: {cam.status.state}")


@cameras.command("remove")
@URL_OPTION
@click.argument("camera_id")
def cameras_remove(url: str, camera_id: str) -> None:
    with _api(url) as client:
        client.remove_camera(camera_id)
    click.echo(f"removed {camera_id}")


@main.group()
def holds() -> None:
    """Place, list and release legal holds on a running Sentinel (privacy:admin)."""


def _hold_line(h: Any) -> str:
    what = h.target_id or f"{_when(h.start_at)}..{_when(h.end_at) if h.end_at else 'open'}"
    state = "active" if h.active else f"released {_when(h.released_at)} by {h.released_by}"
    return f"{h.id}  {h.kind:<12} {h.camera_id:<16} {what}  {state}  {h.reason}"


@holds.command("list")
@URL_OPTION
@click.option("--all", "show_all", is_flag=True, help="Released holds too (the full history).")
@click.option("--json", "as_json", is_flag=True)
def holds_list(url: str, show_all: bool, as_json: bool) -> None:
    with _api(url) as client:
        found = client.holds(active=not show_all)
    if as_json:
        click.echo(json.dumps([h.model_dump(mode="json") for h in found], indent=2))
        return
    for h in found:
        click.echo(_hold_line(h))


@holds.command("place")
@URL_OPTION
@click.option("--camera", "camera_id", help="Hold a range of this camera (with --start).")
@click.option("--start", type=click.DateTime(), help="Range start (UTC unless it has a zone).")
@click.option("--end", type=click.DateTime(), help="Range end; none: until released.")
@click.option("--incident", "incident_id", help="Hold an incident and its span's footage.")
@click.option("--export", "export_id", help="Hold an export.")
@click.option("--reason", required=True, help="Why (case, request).")
def holds_place(
    url: str,
    camera_id: str | None,
    start: datetime | None,
    end: datetime | None,
    incident_id: str | None,
    export_id: str | None,
    reason: str,
) -> None:
    chosen = [n for n, v in (("--camera", camera_id), ("--incident", incident_id),
                             ("--export", export_id)) if v]  # fmt: skip
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --camera, --incident or --export")
    body: dict[str, Any] = {"reason": reason}
    if camera_id:
        body |= {"kind": "camera_range", "camera_id": camera_id}
        body |= {"start_at": _iso(_utc(start)), "end_at": _iso(_utc(end))}
    else:
        body |= {"kind": "incident" if incident_id else "export"}
        body["target_id"] = incident_id or export_id
    with _api(url) as client:
        made = client.place_hold(body)
    click.echo(f"placed {_hold_line(made)}")


@holds.command("release")
@URL_OPTION
@click.argument("hold_id")
def holds_release(url: str, hold_id: str) -> None:
    with _api(url) as client:
        released = client.release_hold(hold_id)
    click.echo(f"released {_hold_line(released)}")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _utc(value: datetime | None) -> datetime | None:
    """Times typed on the command line are UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


@main.command()
@URL_OPTION
@click.option("--camera", "camera_id", default=None, help="Only this camera.")
@click.option("--label", default=None, help="Only this class (person, car, ...).")
@click.option("--since", type=click.DateTime(), default=None, help="Started at or after (UTC).")
@click.option("--until", type=click.DateTime(), default=None, help="Started at or before (UTC).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True)
@JSON_OPTION
def events(
    url: str,
    camera_id: str | None,
    label: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """The newest events of a running Sentinel (following pages up to --limit)."""
    with _api(url) as client:
        found = client.iter_events(
            camera_id=camera_id,
            label=label,
            since=_utc(since),
            until=_utc(until),
            page_size=min(limit, 500),
            max_items=limit,
        )
        for ev in found:
            if as_json:
                click.echo(ev.model_dump_json())
            else:
                click.echo(
                    f"{ev.id:<24} {ev.camera_id:<16} {ev.label:<10} {ev.score:.2f} "
                    f"{_when(ev.started_at)}  {_when(ev.ended_at)}"
                )


@main.command()
@URL_OPTION
@click.option("--camera", "camera_id", default=None, help="Only this camera.")
@click.option("--label", default=None, help="Only incidents with this class.")
@click.option("--status", "state", type=click.Choice(["open", "closed"]), default=None)
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True)
@JSON_OPTION
def incidents(
    url: str, camera_id: str | None, label: str | None, state: str | None, limit: int, as_json: bool
) -> None:
    """The newest incidents of a running Sentinel (following pages up to --limit)."""
    with _api(url) as client:
        found = client.iter_incidents(
            camera_id=camera_id,
            label=label,
            status="open" if state == "open" else "closed" if state == "closed" else None,
            page_size=min(limit, 500),
            max_items=limit,
        )
        for inc in found:
            if as_json:
                click.echo(inc.model_dump_json())
            else:
                click.echo(
                    f"{inc.id:<24} {inc.camera_id:<16} {inc.status:<7} "
                    f"{','.join(inc.labels):<16} {len(inc.member_ids):>3} event(s) "
                    f"{_when(inc.started_at)}"
                )


@search.command("query")
@URL_OPTION
@click.argument("words")
@click.option("--camera", "camera_id", default=None, help="Only this camera.")
@click.option("--kind", type=click.Choice(["event", "incident"]), default=None)
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@JSON_OPTION
def search_query(
    url: str, words: str, camera_id: str | None, kind: str | None, limit: int, as_json: bool
) -> None:
    """Events and incidents of a running Sentinel closest to WORDS, best first."""
    with _api(url) as client:
        results = client.search(
            words,
            camera_id=camera_id,
            kind="event" if kind == "event" else "incident" if kind == "incident" else None,
            limit=limit,
        )
    for hit in results.items:
        if as_json:
            click.echo(hit.model_dump_json())
        else:
            click.echo(f"{hit.score:.3f} {hit.kind:<8} {hit.id:<24} {hit.camera_id}  {hit.snippet}")
    if results.index_backlog and not as_json:
        click.echo(f"({results.index_backlog} item(s) still waiting to be indexed)", err=True)


@main.group()
def notify() -> None:
    """Notifications."""


@notify.command("listen")
@click.option("--port", type=int, default=9000, show_default=True)
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False))
def notify_listen(port: int, config: Path | None) -> None:
    """Receive webhooks on 127.0.0.1:PORT and print them, checking their signatures."""
    import http.server
    import json
    import time

    from sentinel.notify.relay import secrets_of
    from sentinel.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook

    settings = _settings(config)
    secret, _ = secrets_of(settings.notify, settings.data_dir)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ok = verify_webhook(
                secret,
                self.headers.get(TIMESTAMP_HEADER, ""),
                self.headers.get(SIGNATURE_HEADER, ""),
                body,
                now=time.time(),
            )
            self.send_response(200 if ok else 401)
            self.end_headers()
            try:
                shown = json.dumps(json.loads(body), indent=2)
            except ValueError:
                shown = body.decode(errors="replace")
            click.echo(f"{'signed' if ok else 'BAD SIGNATURE'} {self.path}\n{shown}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    click.echo(f"listening on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@main.group()
def train() -> None:
    """Training runs of the detector (Ray Data curation, Ray Train, the gate) by the HTTP API."""


def _run_line(run: Any) -> str:
    p = run.progress
    loss = f" loss={p.loss:.3f}" if p.loss is not None else ""
    gate = "" if run.gate_passed is None else f" gate={'passed' if run.gate_passed else 'refused'}"
    version = f" version={run.challenger_version}" if run.challenger_version else ""
    return (
        f"{run.id}  {run.status:<10} {run.dataset}:v{run.dataset_version or '?'} "
        f"epoch {p.epoch}/{p.epochs} step {p.step}/{p.total_steps or '?'}{loss}{gate}{version}"
    )


def _follow(client: Any, run_id: str, interval_s: float) -> Any:
    """Poll the run until it ends, with a progress bar over its optimiser steps."""
    run = client.training_run(run_id)
    with click.progressbar(length=1000, label=f"{run.status:<10}", show_percent=True) as bar:
        shown = 0
        while not run.finished_at:
            time.sleep(interval_s)
            run = client.training_run(run_id)
            done = int(run.progress.fraction * 1000)
            bar.label = f"{run.status:<10} epoch {run.progress.epoch}/{run.progress.epochs}"
            bar.update(max(0, done - shown))
            shown = max(shown, done)
        bar.update(1000 - shown)
    return run


def _print_outcome(run: Any) -> None:
    click.echo(_run_line(run))
    if run.error:
        raise click.ClickException(f"training run {run.id} failed: {run.error}")
    if run.gate:
        click.echo(f"gate: {run.gate.get('reason', '')}")
    if run.mlflow_run_id:
        click.echo(f"MLflow run: {run.mlflow_run_id} (`sentinel mlflow ui` to browse)")


@train.command("run")
@URL_OPTION
@click.option("--dataset", required=True, help="The dataset's name.")
@click.option("--version", type=int, default=None, help="Its version (default: the newest).")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--input-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow its progress.")
@click.option("--interval", type=float, default=2.0, show_default=True)
def train_run(
    url: str,
    dataset: str,
    version: int | None,
    epochs: int | None,
    batch_size: int | None,
    input_size: int | None,
    lr: float | None,
    wait: bool,
    interval: float,
) -> None:
    """Start a training run; with --wait (default) follow it with a progress bar."""
    with _api(url) as client:
        run = client.start_training(
            dataset,
            version=version,
            epochs=epochs,
            batch_size=batch_size,
            input_size=input_size,
            lr=lr,
        )
        click.echo(f"started training run {run.id}")
        if wait:
            _print_outcome(_follow(client, run.id, interval))


@train.command("status")
@URL_OPTION
@click.argument("run_id")
@click.option("--wait", is_flag=True, help="Follow it with a progress bar until it ends.")
@click.option("--interval", type=float, default=2.0, show_default=True)
@JSON_OPTION
def train_status(url: str, run_id: str, wait: bool, interval: float, as_json: bool) -> None:
    """One run's status, progress and gate report."""
    with _api(url) as client:
        run = _follow(client, run_id, interval) if wait else client.training_run(run_id)
    if as_json:
        click.echo(run.model_dump_json())
        return
    _print_outcome(run)


@train.command("list")
@URL_OPTION
@click.option("--limit", type=int, default=20, show_default=True)
@JSON_OPTION
def train_list(url: str, limit: int, as_json: bool) -> None:
    """Training runs, newest first."""
    with _api(url) as client:
        runs = client.training_runs(limit=limit)
    for run in runs:
        click.echo(run.model_dump_json() if as_json else _run_line(run))


@main.group()
def mlflow() -> None:
    """The MLflow tracking store of training runs and the model registry."""


@mlflow.command("ui")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--port", type=int, default=5000, show_default=True)
def mlflow_ui(config: Path | None, port: int) -> None:
    """Run `mlflow ui` on the embedded store (or train.mlflow_uri), bound to 127.0.0.1."""
    settings = _settings(config)
    uri = settings.mlflow_tracking_uri()
    cmd = [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    if uri.startswith("sqlite:///"):
        cmd += ["--default-artifact-root", settings.mlflow_artifacts_dir().resolve().as_uri()]
    click.echo(f"MLflow UI on http://127.0.0.1:{port}/ ({uri})")
    raise SystemExit(subprocess.call(cmd))  # noqa: S603 - our own argv, no shell


if __name__ == "__main__":
    main()
