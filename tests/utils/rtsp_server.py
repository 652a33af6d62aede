# mypy: ignore-errors
"""A tiny RTSP server for tests: serves one H.264 MP4 file like an IP camera.

Run it with Debian's ``/usr/bin/python3`` (it needs ``gi`` and GstRtspServer, which the
project's virtualenv does not have)::

    /usr/bin/python3 tests/utils/rtsp_server.py --file clip.mp4 --port 8554 --mount cam

It listens on 127.0.0.1 only and prints ``READY rtsp://127.0.0.1:<port>/<mount>`` on stdout
once the socket is bound (``--port 0`` picks a free port and reports it in that line). The
media is shared, so every client sees the same live stream, as with a real camera. The stream
ends (RTSP clients see EOF) when the file ends; it does not loop. SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, type=Path, help="H.264 MP4 file to serve")
    parser.add_argument("--port", type=int, default=8554, help="TCP port (0 = any free port)")
    parser.add_argument("--mount", default="cam", help="mount point, e.g. 'cam' -> /cam")
    args = parser.parse_args(argv)

    path = args.file.resolve()
    if not path.is_file():
        print(f"rtsp_server: no such file: {path}", file=sys.stderr)
        return 2
    mount = "/" + args.mount.strip("/")
    # The location is quoted for gst_parse_launch; a quote in the path would break out of it.
    if '"' in str(path):
        print(f"rtsp_server: unsupported character in path: {path}", file=sys.stderr)
        return 2

    Gst.init(None)
    launch = (
        f'( filesrc location="{path}" ! qtdemux ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on {HOST}:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()

    def stop(*_args) -> bool:
        loop.quit()
        return False

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, stop)

    print(f"READY rtsp://{HOST}:{server.get_bound_port()}{mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
