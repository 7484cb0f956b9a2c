"""A fresh process with sentry-sdk's OpenAI integration on, swallowing one LLM failure.

sentry-sdk sets each integration up once per process, and an earlier init in which its
LangChain integration switched OpenAI's off leaves it off for good: the call-level event
these tests are about needs a process of its own.
Usage: python -m tests.apps.swallow_in_fresh_process DSN OPENAI_BASE_URL UID CALL_EVENTS(0|1)
"""

import contextlib
import sys

import openai
import sentry_sdk
from sentry_sdk.integrations.openai import OpenAIIntegration

from byok_tasks import byok_context
from byok_tasks.sentry import ByokIntegration
from byok_tasks.testing.sandbox import sandbox_key

dsn, base_url, uid, call_events = sys.argv[1:5]
sentry_sdk.init(dsn=dsn, integrations=[ByokIntegration(call_events=call_events == "1"), OpenAIIntegration()])
if sentry_sdk.get_client().get_integration(OpenAIIntegration) is None:
    sys.exit("the OpenAI integration is not active")
client = openai.OpenAI(api_key=sandbox_key("openai", "invalid"), base_url=base_url, max_retries=0)
# Handled by the application, and not reported.
with byok_context(uid, ["openai"]), contextlib.suppress(openai.AuthenticationError):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
sentry_sdk.flush()
