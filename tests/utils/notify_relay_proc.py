"""A notifier relay in its own process, for the tests that kill it (``python -m``).

Usage: ``python -m tests.utils.notify_relay_proc DB_URL REDIS_URL SETTINGS_JSON DATA_DIR``;
it ticks until killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sentinel.config import NotifySettings
from sentinel.notify.relay import make_relay
from sentinel.store.db import make_engine


def main() -> None:
    db_url, redis_url, settings_json, data_dir = sys.argv[1:5]
    settings = NotifySettings(**json.loads(settings_json))
    relay = make_relay(make_engine(db_url), settings, Path(data_dir), redis_url or None)
    print("ready", flush=True)
    while True:
        try:
            busy = relay.tick().busy()
        except Exception as exc:  # the database blinked: try again
            print(f"tick failed: {exc!r}", file=sys.stderr, flush=True)
            busy = False
        if not busy:
            time.sleep(settings.poll_interval_s)


if __name__ == "__main__":
    main()
