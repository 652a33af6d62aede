"""The notifier's thin Ray actor: runs ``sentinel.notify.relay.Relay.tick`` in a loop.

Detached and restarted by Ray when it dies (``max_restarts=-1``); the loop starts in the
constructor, so a restarted actor resumes by itself: outbox rows and deliveries its previous
life had leased are leased again when their leases expire, and resent with the same
idempotency keys.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import ray

from sentinel.config import NotifySettings
from sentinel.notify.relay import Relay, TickReport, make_relay
from sentinel.store.db import make_engine

logger = logging.getLogger(__name__)

NOTIFIER_NAME = "sentinel-notifier"


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=4)  # type: ignore[call-overload]
class NotifierActor:
    """Relays the notifier's outbox (see ``sentinel.notify.relay``)."""

    def __init__(self, runtime: dict[str, Any]) -> None:
        self.settings = NotifySettings(**runtime.get("notify", {}))
        self.relay: Relay = make_relay(
            make_engine(runtime["db_url"]),
            self.settings,
            Path(runtime["data_dir"]),
            runtime.get("redis_url"),
        )
        self.stopped = threading.Event()
        self.totals = TickReport()
        self.last_error = ""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="notifier", daemon=True)
        self.thread.start()

    def start(self) -> bool:
        """The loop runs from the constructor on; kept for the platform's start protocol."""
        return self.thread.is_alive()

    def status(self) -> dict[str, Any]:
        with self.lock:
            t = self.totals
            return {
                "planned": t.planned,
                "digests": t.digests,
                "delivered": t.delivered,
                "sent": t.sent,
                "retried": t.retried,
                "failed": t.failed,
                "cancelled": t.cancelled,
                "deferred": t.deferred,
                "last_error": self.last_error,
                "outbox_backlog": self.relay.repo.outbox_backlog(),
            }

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                report = self.relay.tick()
            except Exception as exc:  # the database is down: wait and try again
                self.last_error = repr(exc)[:500]
                logger.exception("notifier tick failed")
                time.sleep(max(self.settings.poll_interval_s, 1.0))
                continue
            with self.lock:
                for name in ("planned", "digests", "delivered", "sent", "retried", "failed"):
                    setattr(self.totals, name, getattr(self.totals, name) + getattr(report, name))
                self.totals.cancelled += report.cancelled
                self.totals.deferred += report.deferred
            if not report.busy():
                self.stopped.wait(self.settings.poll_interval_s)
