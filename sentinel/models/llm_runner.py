"""The embedded LLM run in-process with xllamacpp: OpenAI chat-completions JSON in and out.

No Ray here: the Serve deployment (:mod:`sentinel.serve.llm`) and the benchmarks wrap the same
runner, so the bare baseline and the served path run identical code. Requests go straight to
llama.cpp's server code through ``xllamacpp.Server.handle_chat_completions``; llama.cpp also
binds its own HTTP listener on 127.0.0.1 at a random port, which nothing here uses.

Streaming uses the same call with ``stream: true`` and a callback: llama.cpp calls it once per
``chat.completion.chunk`` as each token is decoded (role delta first, content deltas, a chunk
with ``finish_reason``, then a usage chunk when asked for), and stops generating when the
callback returns true. :class:`ChatStream` runs that call on its own thread and hands the
chunks over through a queue, so a reader sees each token as soon as it exists.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path
from typing import Any

import xllamacpp

from sentinel.models.gguf import verify_gguf

logger = logging.getLogger(__name__)

ROLES = frozenset({"system", "user", "assistant"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
MAX_TOKENS_LIMIT = 1024
DEFAULT_MAX_TOKENS = 256
MAX_MESSAGES = 64
MAX_CONTENT_CHARS = 32_000
_OPTIONAL_KEYS = frozenset(
    {"model", "temperature", "top_p", "seed", "stop", "n", "stream", "stream_options"}
)
_KNOWN_KEYS = _OPTIONAL_KEYS | {
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "response_format",
}
# llama.cpp log levels: 0 output, 1 error, 2 warning, 3 info, 4 debug.
_LLAMA_VERBOSITY = 1
OWNED_BY = "sentinel"


def _validate_messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("messages must be a non-empty list of {role, content} objects")
    if len(raw) > MAX_MESSAGES:
        raise ValueError(f"messages may hold at most {MAX_MESSAGES} entries, got {len(raw)}")
    messages: list[dict[str, str]] = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict):
            raise ValueError(f"messages[{i}] must be an object, got {type(msg).__name__}")
        extra = set(msg) - {"role", "content"}
        if extra:
            raise ValueError(f"messages[{i}] has unknown keys {sorted(extra)}")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise ValueError(f"messages[{i}].role must be one of {sorted(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}].content must be a string")
        if len(content) > MAX_CONTENT_CHARS:
            raise ValueError(f"messages[{i}].content is longer than {MAX_CONTENT_CHARS} chars")
        messages.append({"role": role, "content": content})
    return messages


def _validate_max_tokens(request: dict[str, Any]) -> int:
    value = request.get("max_tokens", request.get("max_completion_tokens", DEFAULT_MAX_TOKENS))
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"max_tokens must be an integer, got {value!r}")
    if not 1 <= value <= MAX_TOKENS_LIMIT:
        raise ValueError(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}, got {value}")
    return value


def _validate_number(request: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low} and {high}, got {value}")
    return float(value)


def _validate_response_format(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in RESPONSE_FORMATS:
        raise ValueError(
            f"response_format must be an object with type in {sorted(RESPONSE_FORMATS)}"
        )
    return dict(raw)


def _validate_stream(request: dict[str, Any]) -> dict[str, Any] | None:
    """``stream_options`` for a streamed request, ``None`` for a plain one."""
    stream = request.get("stream", False)
    if not isinstance(stream, bool):
        raise ValueError(f"stream must be a boolean, got {stream!r}")
    options = request.get("stream_options")
    if not stream:
        if options is not None:
            raise ValueError("stream_options is only allowed with stream=true")
        return None
    if options is None:
        return {"include_usage": False}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise ValueError("stream_options must be an object with only include_usage")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise ValueError("stream_options.include_usage must be a boolean")
    return {"include_usage": include_usage}


def validate_chat_request(request: Any) -> dict[str, Any]:
    """Check an OpenAI chat-completions request and return the cleaned copy sent to llama.cpp.

    Args:
        request: The request body: ``messages`` (required), ``max_tokens`` (1..1024, default
            256), and optionally ``model``, ``temperature`` (0..2), ``top_p``, ``seed``,
            ``stop``, ``response_format``, ``n`` (must be 1), ``stream`` and
            ``stream_options`` (``include_usage`` only).

    Returns:
        A new dict holding only the validated fields; ``stream`` and ``stream_options`` are
        in it only for a streamed request.

    Raises:
        ValueError: The request is malformed; the message says which field and why.
    """
    if not isinstance(request, dict):
        raise ValueError(f"request must be a JSON object, got {type(request).__name__}")
    unknown = set(request) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown request fields {sorted(unknown)}")
    stream_options = _validate_stream(request)
    if request.get("n", 1) != 1:
        raise ValueError("only n=1 is supported")
    model = request.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError("model must be a string")
    clean: dict[str, Any] = {
        "messages": _validate_messages(request.get("messages")),
        "max_tokens": _validate_max_tokens(request),
    }
    temperature = _validate_number(request, "temperature", 0.0, 2.0)
    if temperature is not None:
        clean["temperature"] = temperature
    top_p = _validate_number(request, "top_p", 0.0, 1.0)
    if top_p is not None:
        clean["top_p"] = top_p
    seed = request.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError("seed must be an integer")
        clean["seed"] = seed
    stop = request.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
            raise ValueError("stop must be a string or a list of at most 4 strings")
        clean["stop"] = stop
    response_format = _validate_response_format(request.get("response_format"))
    if response_format is not None:
        clean["response_format"] = response_format
    if stream_options is not None:
        clean["stream"] = True
        clean["stream_options"] = stream_options
    return clean


def _error(error: Any) -> Exception:
    """llama.cpp's ``{"code", "message"}`` as ValueError (a 4xx: the caller's fault) or
    RuntimeError (anything else)."""
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message", error) if isinstance(error, dict) else error
    if isinstance(code, int) and 400 <= code < 500:
        # e.g. a prompt longer than the context window
        return ValueError(f"llama.cpp rejected the request: {message}")
    return RuntimeError(f"llama.cpp error: {message}")


_END = object()


class _Progress:
    """What the generating thread shares with its :class:`ChatStream` (never the stream itself,
    so a dropped stream is collected, and cancelled by ``__del__``, while generation runs)."""

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.produced = 0


def _produce(runner: LlamaRunner, clean: dict[str, Any], progress: _Progress) -> None:
    """Runs one streamed completion, putting each chunk (or the error) on ``progress.items``."""

    def on_chunk(chunk: Any) -> bool:  # called by llama.cpp; returning true stops generation
        if isinstance(chunk, dict) and "error" in chunk:
            progress.items.put(_error(chunk["error"]))
            return True
        progress.produced += 1
        progress.items.put(chunk)
        return progress.cancelled.is_set()

    try:
        with runner._lock:
            if not progress.cancelled.is_set():
                runner._server.handle_chat_completions(clean, on_chunk)
    except ValueError as exc:
        progress.items.put(ValueError(f"llama.cpp rejected the request: {exc}"))
    except Exception as exc:  # handed to the reader, who owns the request
        progress.items.put(RuntimeError(f"llama.cpp failed: {exc}"))
    finally:
        progress.finished.set()
        progress.items.put(_END)


class ChatStream(Iterator[dict[str, Any]]):
    """The ``chat.completion.chunk`` objects of one streamed completion, token by token.

    Generation starts at construction on a worker thread that holds the runner's lock until it
    ends; iterating blocks until the next chunk exists. :meth:`close` (or dropping the stream)
    stops generation after the current token. An error llama.cpp reports is raised by the
    iteration that reaches it: ``ValueError`` for a bad request (e.g. a prompt longer than the
    context window, which comes before any chunk), ``RuntimeError`` otherwise.
    """

    def __init__(self, runner: LlamaRunner, clean: dict[str, Any]) -> None:
        self._model = runner.model_alias
        self._progress = _Progress()
        self._done = False
        threading.Thread(
            target=_produce, args=(runner, clean, self._progress), name="llm-stream", daemon=True
        ).start()

    @property
    def produced(self) -> int:
        """Chunks llama.cpp has generated so far (read or not)."""
        return self._progress.produced

    @property
    def cancelled(self) -> bool:
        return self._progress.cancelled.is_set()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait until generation has ended (done, failed or cancelled); false on timeout."""
        return self._progress.finished.wait(timeout)

    def __next__(self) -> dict[str, Any]:
        if self._done:
            raise StopIteration
        item = self._progress.items.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, Exception):
            self._done = True
            self._progress.cancelled.set()
            raise item
        if not isinstance(item, dict):
            self._done = True
            raise RuntimeError(f"llama.cpp streamed {type(item).__name__}, expected an object")
        item["model"] = self._model
        return item

    def close(self) -> None:
        """Stop generating (after the token being decoded) and end the iteration."""
        if not self._progress.finished.is_set():
            self._progress.cancelled.set()
        self._done = True

    def __del__(self) -> None:
        self.close()


async def iterate_async(stream: ChatStream) -> AsyncGenerator[dict[str, Any], None]:
    """``stream``'s chunks for an event loop: each wait for a token runs on a worker thread.

    Closing the generator (or cancelling the task reading it) closes the stream, which stops
    generation.
    """
    try:
        while True:
            chunk = await asyncio.to_thread(next, stream, None)
            if chunk is None:
                return
            yield chunk
    finally:
        stream.close()


def completion_from_chunks(chunks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``chat.completion`` a streamed completion's chunks add up to.

    Lets a plain (non-streamed) answer be generated through the cancellable stream: the content
    is the deltas joined, ``finish_reason`` the last one given, ``usage`` the usage chunk's.

    Args:
        chunks: Every ``chat.completion.chunk`` of one completion streamed with
            ``stream_options.include_usage`` true.

    Returns:
        An OpenAI ``chat.completion`` object with ``choices`` and ``usage``.

    Raises:
        RuntimeError: The chunks hold no usage (the stream ended early or lacked it).
    """
    parts: list[str] = []
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    first: dict[str, Any] = chunks[0] if chunks else {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                parts.append(content)
            if choice.get("finish_reason"):
                finish_reason = choice["finish_reason"]
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
    if usage is None:
        raise RuntimeError("the streamed completion ended without usage")
    return {
        "id": first.get("id", ""),
        "object": "chat.completion",
        "created": first.get("created", int(time.time())),
        "model": first.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts)},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


async def await_or_cancel(call: Any) -> Any:
    """Await a remote call (a Ray Serve ``DeploymentResponse``), cancelling it if the awaiting
    task is cancelled (a caller's timeout), so the replica stops generating an answer nobody
    will read instead of making the next requests wait behind it."""
    try:
        return await call
    except asyncio.CancelledError:
        call.cancel()
        raise


class LlamaRunner:
    """A GGUF chat model loaded in this process; one generation at a time.

    Args:
        model_path: The GGUF file; it must have a matching ``<file>.sha256`` beside it.
        threads: CPU threads for prompt processing and generation.
        ctx_size: Context window in tokens.
        model_alias: The ``model`` name reported in responses.
        verify: Check the file's sha256 before loading.

    Raises:
        ModelFileError: The file is missing or fails its checksum.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int = 2,
        ctx_size: int = 2048,
        model_alias: str = "qwen2.5-0.5b-instruct",
        verify: bool = True,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if ctx_size < 256:
            raise ValueError(f"ctx_size must be >= 256, got {ctx_size}")
        self.model_path = model_path
        self.model_alias = model_alias
        self.threads = threads
        self.ctx_size = ctx_size
        self.sha256 = verify_gguf(model_path) if verify else None
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.model_alias = {model_alias}
        params.n_ctx = ctx_size
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.ui = False
        params.endpoint_slots = False
        params.endpoint_metrics = False
        params.verbosity = _LLAMA_VERBOSITY
        start = time.perf_counter()
        self._server = xllamacpp.Server(params)
        self.load_s = time.perf_counter() - start
        self.loaded_at = int(time.time())
        self._lock = threading.Lock()
        logger.info("loaded LLM %s in %.1f s (%d threads)", model_path, self.load_s, threads)

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one OpenAI chat-completions request.

        Args:
            request: See :func:`validate_chat_request`.

        Returns:
            An OpenAI ``chat.completion`` object with ``choices`` and ``usage``
            (``prompt_tokens``, ``completion_tokens``, ``total_tokens``).

        Raises:
            ValueError: The request is invalid, or llama.cpp rejected it (e.g. the prompt
                exceeds the context window).
            RuntimeError: llama.cpp failed otherwise.
        """
        clean = validate_chat_request(request)
        if clean.get("stream"):
            raise ValueError("chat() answers stream=false requests; use chat_stream()")
        with self._lock:
            try:
                result = self._server.handle_chat_completions(clean)
            except ValueError as exc:
                raise ValueError(f"llama.cpp rejected the request: {exc}") from exc
        if not isinstance(result, dict):
            raise RuntimeError(f"llama.cpp returned {type(result).__name__}, expected an object")
        if "error" in result:
            raise _error(result["error"])
        usage = result.get("usage")
        if not isinstance(usage, dict) or not result.get("choices"):
            raise RuntimeError("llama.cpp returned a completion without choices or usage")
        result["model"] = self.model_alias
        return result

    def chat_stream(self, request: dict[str, Any]) -> ChatStream:
        """Start one streamed OpenAI chat completion (``stream: true``).

        Args:
            request: See :func:`validate_chat_request`; ``stream`` must be true.

        Returns:
            The chunks as they are generated: a ``chat.completion.chunk`` whose delta holds the
            role, one per token with a content delta, one with ``finish_reason``, and one with
            ``usage`` (and empty ``choices``) when ``stream_options.include_usage`` is true.

        Raises:
            ValueError: The request is invalid (raised here, before generation starts).
        """
        clean = validate_chat_request(request)
        if not clean.get("stream"):
            raise ValueError("chat_stream() answers stream=true requests; use chat()")
        return ChatStream(self, clean)

    def model_card(self) -> dict[str, Any]:
        """The served model as an OpenAI ``model`` object (``GET /v1/models``)."""
        return {
            "id": self.model_alias,
            "object": "model",
            "created": self.loaded_at,
            "owned_by": OWNED_BY,
        }
