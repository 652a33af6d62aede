"""A real OpenAI-compatible HTTP server for tests, whose behaviour a test changes at run time.

It listens on 127.0.0.1 at a free port and answers ``POST /v1/chat/completions`` according to
its ``mode``:

- ``ok``: a valid ``chat.completion`` whose content is :attr:`FakeOpenAI.content` (by default a
  valid alert decision as JSON), with ``usage`` token counts;
- ``slow``: waits :attr:`FakeOpenAI.delay_s`, then answers as ``ok``;
- ``fail``: HTTP :attr:`FakeOpenAI.fail_status` (500) with an OpenAI-style error body;
- ``malformed``: HTTP 200 with a body that is not JSON;
- ``garbage_json``: HTTP 200, a valid completion whose content is not a decision.

A request with ``stream: true`` gets the same content as ``chat.completion.chunk`` server-sent
events (a word per chunk, the usage chunk when ``stream_options.include_usage`` asks for it).

Every request body that parses as JSON is appended to :attr:`FakeOpenAI.requests`. Requests are
served on their own threads, so concurrent clients (and a ``slow`` one) do not block others::

    with fake_openai_server(mode="ok") as fake:
        client = ChatOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
        ...
        fake.set_mode("fail")
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast, get_args

Mode = Literal["ok", "slow", "fail", "malformed", "garbage_json"]
MODES: frozenset[str] = frozenset(get_args(Mode))
HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"

DEFAULT_DECISION: dict[str, Any] = {
    "alert": True,
    "severity": "high",
    "summary": "A person is loitering by the loading dock after hours.",
    "reasons": ["person present for 4 minutes", "outside business hours"],
    "recommended_action": "Dispatch security to the loading dock.",
}
DEFAULT_CONTENT = json.dumps(DEFAULT_DECISION)
GARBAGE_CONTENT = "I think so!"
MALFORMED_BODY = b"<html>502 Bad Gateway</html> {not json"


def _count_tokens(text: str) -> int:
    """A rough token count (whitespace words), enough for tests of usage accounting."""
    return max(1, len(text.split()))


class FakeOpenAI:
    """Mutable behaviour and a record of requests; shared by the handler threads."""

    def __init__(
        self,
        *,
        mode: Mode = "ok",
        content: str = DEFAULT_CONTENT,
        delay_s: float = 2.0,
        fail_status: int = 500,
        model: str = "fake-gpt",
    ) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._mode: Mode = "ok"
        self._script: list[Mode] = []
        self.set_mode(mode)
        self._content = content
        self._delay_s = delay_s
        self._fail_status = fail_status
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.base_url = ""

    # Settings, read under the lock by handler threads.
    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._mode

    @property
    def content(self) -> str:
        with self._lock:
            return self._content

    @property
    def delay_s(self) -> float:
        with self._lock:
            return self._delay_s

    @property
    def fail_status(self) -> int:
        with self._lock:
            return self._fail_status

    def set_mode(self, mode: str) -> None:
        """Switch behaviour for subsequent requests (one of :data:`MODES`)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        with self._lock:
            self._mode = cast(Mode, mode)

    def set_content(self, content: str | dict[str, Any]) -> None:
        """The assistant content of ``ok``/``slow`` answers (a dict is sent as JSON)."""
        with self._lock:
            self._content = content if isinstance(content, str) else json.dumps(content)

    def set_delay(self, delay_s: float) -> None:
        """How long ``slow`` waits before answering."""
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        with self._lock:
            self._delay_s = delay_s

    def set_fail_status(self, status: int) -> None:
        """The HTTP status ``fail`` answers with (e.g. 429, 500, 503)."""
        if not 400 <= status <= 599:
            raise ValueError("fail_status must be an HTTP error status (400..599)")
        with self._lock:
            self._fail_status = status

    def record(self, body: dict[str, Any]) -> Mode:
        """Records a request; returns the mode it gets (the next scripted one, if any)."""
        with self._lock:
            self.requests.append(body)
            return self._script.pop(0) if self._script else self._mode

    def set_script(self, modes: list[str]) -> None:
        """Modes for the next requests, one each, in order; then back to ``mode``."""
        for m in modes:
            if m not in ("ok", "slow", "fail", "malformed", "garbage_json"):
                raise ValueError(f"unknown mode {m!r}")
        with self._lock:
            self._script = [cast(Mode, m) for m in modes]

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self) -> None:
        """Forget recorded requests and go back to ``ok`` with the default content."""
        with self._lock:
            self.requests.clear()
            self._mode = "ok"
            self._content = DEFAULT_CONTENT

    def completion(self, body: dict[str, Any], content: str) -> dict[str, Any]:
        """A ``chat.completion`` object answering ``body`` with ``content``."""
        messages = body.get("messages") or []
        prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        prompt_tokens = _count_tokens(prompt)
        completion_tokens = _count_tokens(content)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def wait(self, seconds: float) -> None:
        """Sleep, but wake at once when the server shuts down."""
        self._stop.wait(seconds)

    def release_waiters(self) -> None:
        """Wake every ``slow`` request now (used at shutdown)."""
        self._stop.set()


def _error(message: str, kind: str, code: int) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout): fine

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = self.server.fake.model
            data = {"object": "list", "data": [{"id": model, "object": "model"}]}
            self._send(200, json.dumps(data).encode())
        else:
            self._send(404, _error(f"no route GET {self.path}", "not_found", 404))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].rstrip("/") != CHAT_PATH:
            self._send(404, _error(f"no route POST {self.path}", "not_found", 404))
            return
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._send(400, _error("request body is not JSON", "invalid_request_error", 400))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._send(400, _error("messages must be a list", "invalid_request_error", 400))
            return
        fake = self.server.fake
        mode = fake.record(body)
        if mode == "slow":
            fake.wait(fake.delay_s)
        if mode == "fail":
            status = fake.fail_status
            self._send(status, _error("injected failure", "server_error", status))
        elif mode == "malformed":
            self._send(200, MALFORMED_BODY)
        else:
            content = GARBAGE_CONTENT if mode == "garbage_json" else fake.content
            if body.get("stream"):
                self._stream(body, fake.completion(body, content))
            else:
                self._send(200, json.dumps(fake.completion(body, content)).encode())

    def _stream(self, body: dict[str, Any], completion: dict[str, Any]) -> None:
        """The completion as OpenAI ``chat.completion.chunk`` server-sent events, a word per
        chunk, then (with ``stream_options.include_usage``) the usage chunk, then [DONE]."""
        content = str(completion["choices"][0]["message"]["content"])
        words = [w + " " for w in content.split(" ")]
        words[-1] = words[-1][:-1]
        base = {k: completion[k] for k in ("id", "created", "model")}
        base["object"] = "chat.completion.chunk"
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": w}}]}
            for w in words
        ]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": completion["usage"]})
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeOpenAI) -> None:
        super().__init__((HOST, 0), _Handler)
        self.fake = fake


@contextmanager
def fake_openai_server(**initial: Any) -> Iterator[FakeOpenAI]:
    """Run a :class:`FakeOpenAI` on 127.0.0.1 at a free port for the ``with`` block.

    Args:
        **initial: Keyword arguments of :class:`FakeOpenAI` (``mode``, ``content``,
            ``delay_s``, ``fail_status``, ``model``).

    Yields:
        The fake, with ``base_url`` set to ``http://127.0.0.1:<port>/v1``.
    """
    fake = FakeOpenAI(**initial)
    server = _Server(fake)
    port = server.server_address[1]
    fake.base_url = f"http://{HOST}:{port}/v1"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        fake.release_waiters()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
