"""Area 10: what sits in front of a provider: Cloudflare and nginx HTML pages, empty and plain bodies, JSON of an
unexpected shape, a connection cut mid-body. The right transport or server reason, never a crash, never HTML in
the message."""

from __future__ import annotations

import pytest

from byok_tasks.testing.provider_server import ProviderServer, cut_off, json_reply, raw_reply
from tests.classification._harness import Case, check, html_reply, run, select, stream_reply
from tests.support.fixtures import loopback_only_fixture, provider_server_fixture, server_fixture  # noqa: F401


def cloudflare_page(code: int, title: str) -> str:
    # The shape of Cloudflare's own error pages: https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-5xx-errors/
    return (
        '<!DOCTYPE html>\n<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->\n'
        f'<html class="no-js" lang="en-US"><head><title>api.openai.com | {code}: {title}</title>'
        '<meta charset="UTF-8" /><link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/main.css" />'
        + "<style>body{margin:0;padding:0}</style>"
        * 40
        + f'</head><body><div id="cf-wrapper"><h1><span class="inline-block">{title}</span>'
        f'<span class="code-label">Error code {code}</span></h1>'
        '<p>Cloudflare Ray ID: <strong class="font-semibold">8f1e2d3c4b5a6978</strong></p></div></body></html>'
    )


def nginx_page(status: int, title: str) -> str:
    return (
        f"<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {title}</h1></center>"
        "\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


CLOUDFLARE_1010 = (
    "https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-1xxx-errors/error-1010/"
)
CF = {"server": "cloudflare", "cf-ray": "8f1e2d3c4b5a6978-SJC"}

CASES = [
    Case(
        "cloudflare-520-unknown-error",
        "openai_chat",
        html_reply(520, cloudflare_page(520, "Web server is returning an unknown error"), **CF),
        ("server_error", "openai", "platform"),
        "https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-5xx-errors/error-520/",
    ),
    Case(
        "cloudflare-522-connection-timed-out",
        "openai_chat",
        html_reply(522, cloudflare_page(522, "Connection timed out"), **CF),
        ("timeout", "openai", "byok"),
        "https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-5xx-errors/error-522/",
        byok=("openai",),
    ),
    Case(
        "cloudflare-524-timeout-occurred",
        "openai_chat",
        html_reply(524, cloudflare_page(524, "A timeout occurred"), **CF),
        ("timeout", "openai", "platform"),
        "https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-5xx-errors/error-524/",
    ),
    Case(
        "cloudflare-521-web-server-down",
        "anthropic_messages",
        html_reply(521, cloudflare_page(521, "Web server is down"), **CF),
        ("connection", "anthropic", "platform"),
        "https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-5xx-errors/error-521/",
    ),
    Case(
        "cloudflare-1010-banned-browser-signature",
        "openai_chat",
        html_reply(403, cloudflare_page(1010, "Access denied").replace("Error code 1010", "error code: 1010"), **CF),
        ("permission", "openrouter", "platform"),
        CLOUDFLARE_1010,
        base_url="https://openrouter.ai/api/v1",
    ),
    Case(
        "cloudflare-1010-plain-text",
        "openai_chat",
        raw_reply(403, "error code: 1010", headers=CF),
        ("permission", "deepseek", "byok"),
        CLOUDFLARE_1010 + " (plain-text variant)",
        byok=("deepseek",),
        base_url="https://api.deepseek.com",
    ),
    Case(
        "nginx-502-bad-gateway",
        "openai_chat",
        html_reply(502, nginx_page(502, "Bad Gateway")),
        ("server_error", "together", "platform"),
        "nginx's built-in error page (src/http/ngx_http_special_response.c)",
        base_url="https://api.together.xyz/v1",
    ),
    Case(
        "nginx-504-gateway-timeout",
        "openai_chat",
        html_reply(504, nginx_page(504, "Gateway Time-out")),
        ("timeout", "openai", "platform"),
        "nginx's built-in error page (src/http/ngx_http_special_response.c)",
    ),
    Case(
        "nginx-413-request-entity-too-large",
        "openai_chat",
        html_reply(413, nginx_page(413, "Request Entity Too Large")),
        ("context_length", "fireworks", "platform"),
        "nginx's built-in error page (src/http/ngx_http_special_response.c)",
        base_url="https://api.fireworks.ai/inference/v1",
    ),
    Case(
        "elb-503-service-unavailable",
        "bedrock_converse",
        html_reply(
            503,
            "<html><body><h1>503 Service Temporarily Unavailable</h1>The server is temporarily unable to service "
            "your request.</body></html>",
        ),
        ("overloaded", "bedrock", "platform"),
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/classic/ts-elb-error-message.html (reconstructed "
        "page)",
    ),
    Case(
        "anthropic-html-502",
        "anthropic_messages",
        html_reply(502, nginx_page(502, "Bad Gateway")),
        ("server_error", "anthropic", "byok"),
        "nginx's built-in error page (src/http/ngx_http_special_response.c)",
        byok=("anthropic",),
    ),
    Case(
        "empty-body-401",
        "openai_chat",
        raw_reply(401, b""),
        ("invalid_key", "portkey", "platform"),
        "https://github.com/Portkey-AI/gateway/issues/344 (401 status code (no body))",
        base_url="https://api.portkey.ai/v1",
    ),
    Case(
        "empty-body-500",
        "openai_chat",
        raw_reply(500, b""),
        ("server_error", "openai", "platform"),
        "an empty 500 body (reconstructed): the SDK's 'Error code: 500' path",
    ),
    Case(
        "plain-text-429",
        "openai_chat",
        raw_reply(429, "Too Many Requests"),
        ("rate_limit", "cerebras", "byok"),
        "a plain-text 429 from an edge rate limiter (reconstructed)",
        byok=("cerebras",),
        base_url="https://api.cerebras.ai/v1",
    ),
    Case(
        "plain-text-503-upstream",
        "openai_chat",
        raw_reply(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"),
        ("overloaded", "openai", "platform"),
        "Envoy's local reply when the upstream connection fails (reconstructed)",
    ),
    Case(
        "json-list-body-500",
        "openai_chat",
        json_reply(500, [{"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}]),
        ("server_error", "google", "platform"),
        "https://cloud.google.com/apis/design/errors (body reconstructed in that shape)",
        base_url="https://generativelanguage.googleapis.com/v1beta/openai",
    ),
    Case(
        "json-detail-404",
        "openai_chat",
        json_reply(404, {"detail": "Not Found"}),
        ("model_not_found", "acme", "platform"),
        "https://fastapi.tiangolo.com/tutorial/handling-errors/ (FastAPI's default 404 body)",
        base_url="https://llm.acme.com/v1",
    ),
    Case(
        "json-odd-shape-503",
        "openai_chat",
        json_reply(503, {"error": {"message": None, "code": {"nested": True}, "type": 17}}),
        ("overloaded", "openai", "platform"),
        "a JSON body of no known shape",
    ),
    Case(
        "json-error-number-502",
        "openai_chat",
        json_reply(502, {"error": 502, "message": ["bad", "gateway"]}),
        ("server_error", "xai", "platform"),
        "a JSON body of no known shape",
        base_url="https://api.x.ai/v1",
    ),
    Case(
        "stream-connection-reset-mid-body",
        "openai_chat_stream",
        cut_off(
            stream_reply(
                (
                    None,
                    {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": "gpt-4o-mini",
                        "choices": [{"index": 0, "delta": {"content": "Hel"}}],
                    },
                ),
                (
                    None,
                    {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": "gpt-4o-mini",
                        "choices": [{"index": 0, "delta": {"content": "lo"}}],
                    },
                ),
            ),
            60,
        ),
        ("connection", "openai", "platform"),
        "a reset mid-body: the client's 'peer closed connection without sending complete message body' (reconstructed)",
    ),
    Case(
        "anthropic-stream-connection-reset",
        "anthropic_stream",
        cut_off(stream_reply(("ping", {"type": "ping"}), ("ping", {"type": "ping"})), 30),
        ("connection", "anthropic", "byok"),
        "a reset mid-body: the client's 'peer closed connection without sending complete message body' (reconstructed)",
        byok=("anthropic",),
    ),
]


@pytest.mark.parametrize("case", select(CASES))
def test_front_failure(server: ProviderServer, case: Case) -> None:
    check(server, case)


def test_an_html_page_is_summed_up_in_the_message(server: ProviderServer) -> None:
    page = cloudflare_page(522, "Connection timed out") + "<p>padding</p>" * 4000  # a long page
    failure = run(server, Case("long-page", "openai_chat", html_reply(522, page, **CF), ("", "", ""), ""))
    assert failure is not None
    assert (failure.reason, failure.message) == ("timeout", "HTTP 522 (HTML page from cloudflare)")
