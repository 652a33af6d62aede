"""The embedded LLM run in-process with xllamacpp: OpenAI chat-completions JSON in and out.

No Ray here: the Serve deployment (:mod:`sentinel.serve.llm`) and the benchmarks wrap the same
runner, so the bare baseline and the served path run identical code. Requests go straight to
llama.cpp's server code through ``xllamacpp.Server.handle_chat_completions``; llama.cpp also
binds its own HTTP listener on 127.0.0.1 at a random port, which nothing here uses.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import xllamacpp

from sentinel.serve.llm_model import verify_gguf

logger = logging.getLogger(__name__)

ROLES = frozenset({"system", "user", "assistant"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
MAX_TOKENS_LIMIT = 1024
DEFAULT_MAX_TOKENS = 256
MAX_MESSAGES = 64
MAX_CONTENT_CHARS = 32_000
_OPTIONAL_KEYS = frozenset({"model", "temperature", "top_p", "seed", "stop", "n", "stream"})
_KNOWN_KEYS = _OPTIONAL_KEYS | {
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "response_format",
}
# llama.cpp log levels: 0 output, 1 error, 2 warning, 3 info, 4 debug.
_LLAMA_VERBOSITY = 1


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


def validate_chat_request(request: Any) -> dict[str, Any]:
    """Check an OpenAI chat-completions request and return the cleaned copy sent to llama.cpp.

    Args:
        request: The request body: ``messages`` (required), ``max_tokens`` (1..1024, default
            256), and optionally ``model``, ``temperature`` (0..2), ``top_p``, ``seed``,
            ``stop``, ``response_format``, ``n`` (must be 1) and ``stream`` (must be false).

    Returns:
        A new dict holding only the validated fields.

    Raises:
        ValueError: The request is malformed; the message says which field and why.
    """
    if not isinstance(request, dict):
        raise ValueError(f"request must be a JSON object, got {type(request).__name__}")
    unknown = set(request) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown request fields {sorted(unknown)}")
    if request.get("stream"):
        raise ValueError("stream=true is not supported")
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
    return clean


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
        with self._lock:
            try:
                result = self._server.handle_chat_completions(clean)
            except ValueError as exc:
                raise ValueError(f"llama.cpp rejected the request: {exc}") from exc
        if not isinstance(result, dict):
            raise RuntimeError(f"llama.cpp returned {type(result).__name__}, expected an object")
        if "error" in result:
            error = result["error"]
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message", error) if isinstance(error, dict) else error
            if isinstance(code, int) and 400 <= code < 500:
                # e.g. a prompt longer than the context window: the caller's fault.
                raise ValueError(f"llama.cpp rejected the request: {message}")
            raise RuntimeError(f"llama.cpp error: {message}")
        usage = result.get("usage")
        if not isinstance(usage, dict) or not result.get("choices"):
            raise RuntimeError("llama.cpp returned a completion without choices or usage")
        result["model"] = self.model_alias
        return result
