"""The fake OpenAI server used by agent tests: every mode over real HTTP."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.utils.fake_openai import DEFAULT_DECISION, GARBAGE_CONTENT, fake_openai_server

BODY: dict[str, Any] = {
    "model": "gpt-test",
    "messages": [{"role": "user", "content": "Is this an intruder?"}],
    "max_tokens": 64,
}


def post(base_url: str, body: dict[str, Any] = BODY, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(f"{base_url}/chat/completions", json=body, timeout=timeout)


def test_ok_returns_decision_with_usage() -> None:
    with fake_openai_server() as fake:
        assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/v1")
        r = post(fake.base_url)
        assert r.status_code == 200
        data = r.json()
        assert data["object"] == "chat.completion" and data["model"] == "gpt-test"
        assert json.loads(data["choices"][0]["message"]["content"]) == DEFAULT_DECISION
        usage = data["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert fake.requests == [BODY]


def test_content_is_configurable() -> None:
    with fake_openai_server(content="hello") as fake:
        assert post(fake.base_url).json()["choices"][0]["message"]["content"] == "hello"
        fake.set_content({"alert": False})
        content = post(fake.base_url).json()["choices"][0]["message"]["content"]
        assert json.loads(content) == {"alert": False}


def test_slow_waits_then_answers_and_does_not_block_others() -> None:
    with fake_openai_server(mode="slow", delay_s=1.0) as fake:
        with ThreadPoolExecutor(max_workers=4) as pool:
            start = time.monotonic()
            responses = list(pool.map(lambda _: post(fake.base_url), range(4)))
            elapsed = time.monotonic() - start
        assert all(r.status_code == 200 for r in responses)
        assert 1.0 <= elapsed < 3.0, elapsed  # concurrent, not 4 x 1 s
        assert fake.request_count == 4
        with pytest.raises(httpx.ReadTimeout):
            post(fake.base_url, timeout=0.2)


def test_fail_returns_http_error() -> None:
    with fake_openai_server(mode="fail") as fake:
        r = post(fake.base_url)
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        fake.set_fail_status(503)
        assert post(fake.base_url).status_code == 503


def test_malformed_returns_non_json_body() -> None:
    with fake_openai_server(mode="malformed") as fake:
        r = post(fake.base_url)
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)


def test_garbage_json_is_a_valid_completion_without_a_decision() -> None:
    with fake_openai_server() as fake:
        fake.set_mode("garbage_json")
        data = post(fake.base_url).json()
        assert data["choices"][0]["message"]["content"] == GARBAGE_CONTENT
        assert data["usage"]["completion_tokens"] > 0


def test_mode_switch_reset_and_bad_input() -> None:
    with fake_openai_server() as fake:
        with pytest.raises(ValueError, match="mode must be one of"):
            fake.set_mode("teapot")
        fake.set_mode("fail")
        assert post(fake.base_url).status_code == 500
        fake.reset()
        assert fake.requests == [] and post(fake.base_url).status_code == 200
        r = httpx.post(f"{fake.base_url}/chat/completions", content=b"{nope", timeout=5)
        assert r.status_code == 400
        assert httpx.post(f"{fake.base_url}/embeddings", json={}, timeout=5).status_code == 404
