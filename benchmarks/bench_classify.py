"""How long classify takes on the exceptions real SDKs raise: run ``python benchmarks/bench_classify.py``.

Each exception is raised once by the real SDK against the loopback provider, then
classified many times; the figure is the median CPU time per call over several rounds. The
target is a median under 20 µs on a typical SDK exception, so that classifying every
failure of every task costs nothing worth measuring, and under 200 µs on the worst input
of the corpus (tests/classification): a 64 KB HTML page from Cloudflare, and an SDK error
at the bottom of a 16-exception chain. The last line is what ``llm_call`` adds to a call
that succeeds.
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import anthropic
import httpx2
import openai
from google import genai
from google.genai import types as genai_types

from byok_tasks import classify, llm_call
from byok_tasks.testing.provider_server import ProviderServer, json_reply, raw_reply

TARGET_US = 20.0
WORST_TARGET_US = 200.0
NUMBER = 2_000
ROUNDS = 15
CHAT = [{"role": "user", "content": "hi"}]

# Body: https://github.com/IIC2440/Syllabus-2025-1/issues/13
OPENAI_INVALID_KEY = {
    "error": {
        "message": "Incorrect API key provided: sk-proj-********************************************SJh4. "
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
# Body: https://github.com/anthropics/claude-quickstarts/issues/83
ANTHROPIC_CREDIT_BALANCE = {
    "type": "error",
    "error": {
        "type": "invalid_request_error",
        "message": "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    },
}
# Body: https://github.com/RooCodeInc/Roo-Code/issues/3883
GOOGLE_PER_MINUTE_QUOTA = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                        "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"},
        ],
    }
}


def raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise SystemExit("the SDK call was expected to fail")


def annotated(call: Callable[[], object]) -> BaseException:
    def inside_llm_call() -> object:
        with llm_call(model="benchmark-model", feature="benchmark"):
            return call()

    return raised(inside_llm_call)


def sdk_failures(server: ProviderServer) -> dict[str, Callable[[], object]]:
    def openai_call() -> object:
        server.reply(json_reply(401, OPENAI_INVALID_KEY))
        http_client = httpx2.Client(transport=server.transport(httpx2))
        client = openai.OpenAI(
            api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0, http_client=http_client
        )
        return client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]

    def anthropic_call() -> object:
        server.reply(json_reply(400, ANTHROPIC_CREDIT_BALANCE))
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
        return client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=CHAT)  # type: ignore[arg-type]

    def google_call() -> object:
        server.reply(json_reply(429, GOOGLE_PER_MINUTE_QUOTA))
        http_client = httpx2.Client(transport=server.transport(httpx2))
        client = genai.Client(api_key="test", http_options=genai_types.HttpOptions(httpx_client=http_client))
        return client.models.generate_content(model="gemini-2.5-flash", contents="hi")

    return {
        "openai AuthenticationError (401)": openai_call,
        "anthropic credit balance (400)": anthropic_call,
        "google per-minute quota (429)": google_call,
    }


def cloudflare_page(size: int) -> str:
    # The shape of Cloudflare's own 522 page, padded with the inline styles such pages carry.
    head = '<!DOCTYPE html><html lang="en-US"><head><title>api.openai.com | 522: Connection timed out</title>'
    tail = "</head><body><h1>Connection timed out</h1><p>Cloudflare Ray ID: 8f1e2d3c4b5a6978</p></body></html>"
    padding = "<style>.cf-error-overview{margin:0;padding:0}</style>"
    return head + padding * ((size - len(head) - len(tail)) // len(padding)) + tail


def worst_failures(server: ProviderServer) -> dict[str, Callable[[], object]]:
    def openai_client() -> openai.OpenAI:
        http_client = httpx2.Client(transport=server.transport(httpx2))
        return openai.OpenAI(
            api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0, http_client=http_client
        )

    def html_page() -> object:
        server.reply(raw_reply(522, cloudflare_page(64 * 1024), content_type="text/html"))
        return openai_client().chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]

    def long_chain() -> object:
        def wrapped(depth: int) -> object:
            if depth == 0:
                server.reply(json_reply(401, OPENAI_INVALID_KEY))
                return openai_client().chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
            try:
                return wrapped(depth - 1)
            except Exception as exc:
                raise RuntimeError(f"layer {depth} failed") from exc

        return wrapped(15)

    return {"worst: Cloudflare 522 HTML page (64 KB)": html_page, "worst: 16-exception chain": long_chain}


def median_us(statement: Callable[[], object]) -> float:
    # This thread's CPU time, so that other processes on a shared machine do not count.
    rounds = timeit.repeat(statement, number=NUMBER, repeat=ROUNDS, timer=time.thread_time)
    return statistics.median(rounds) / NUMBER * 1e6


def main() -> int:
    rows: list[tuple[str, float, str]] = []
    with ProviderServer() as server:
        for name, call in sdk_failures(server).items():
            for variant, exc in (("", raised(call)), (" + llm_call", annotated(call))):
                failure = classify(exc)
                assert failure is not None, name
                rows.append((name + variant, median_us(lambda exc=exc: classify(exc)), failure.reason))  # type: ignore[misc]
        worst_rows = []
        for name, call in worst_failures(server).items():
            exc = raised(call)
            failure = classify(exc)
            assert failure is not None, name
            worst_rows.append((name, median_us(lambda exc=exc: classify(exc)), failure.reason))  # type: ignore[misc]

    def succeeding_call() -> None:
        with llm_call("openai", model="gpt-4o-mini", feature="benchmark"):
            pass

    width = max(len(name) for name, _, _ in rows + worst_rows)
    print(f"classify(), CPU time, median of {ROUNDS} rounds of {NUMBER} calls; target < {TARGET_US:.0f} µs\n")
    for name, micros, reason in rows:
        verdict = "ok" if micros < TARGET_US else "OVER TARGET"
        print(f"  {name:<{width}}  {micros:6.2f} µs  {reason:<12} {verdict}")
    print(f"\n  worst inputs of the corpus; target < {WORST_TARGET_US:.0f} µs")
    for name, micros, reason in worst_rows:
        verdict = "ok" if micros < WORST_TARGET_US else "OVER TARGET"
        print(f"  {name:<{width}}  {micros:6.2f} µs  {reason:<12} {verdict}")
    print(f"\n  {'llm_call around a call that succeeds':<{width}}  {median_us(succeeding_call):6.2f} µs")
    typical = max(micros for _, micros, _ in rows)
    worst = max(micros for _, micros, _ in worst_rows)
    print()
    for label, micros, target in (("typical", typical, TARGET_US), ("worst-input", worst, WORST_TARGET_US)):
        verdict = "within" if micros < target else "over"
        print(f"slowest {label} median {micros:.2f} µs: {verdict} the {target:.0f} µs target")
    return 0 if typical < TARGET_US and worst < WORST_TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
