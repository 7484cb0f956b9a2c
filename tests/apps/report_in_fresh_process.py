"""A fresh process with sentry-sdk's OpenAI integration on, reporting one handled failure.

sentry-sdk sets each integration up once per process, and an earlier init in which its
LangChain integration switched OpenAI's off leaves it off for good: the test that needs
OpenAI's own capture at the call runs this script in a process of its own.
Usage: python -m tests.apps.report_in_fresh_process DSN OPENAI_BASE_URL UID
"""

import sys

import openai
import sentry_sdk
from sentry_sdk.integrations.openai import OpenAIIntegration

from byok_tasks import byok_context, report_llm_error
from byok_tasks.sentry import ByokIntegration
from byok_tasks.testing.sandbox import sandbox_key

dsn, base_url, uid = sys.argv[1:4]
sentry_sdk.init(dsn=dsn, integrations=[ByokIntegration(), OpenAIIntegration()])
if sentry_sdk.get_client().get_integration(OpenAIIntegration) is None:
    sys.exit("the OpenAI integration is not active")
with byok_context(uid, ["openai"]):
    client = openai.OpenAI(api_key=sandbox_key("openai", "invalid"), base_url=base_url, max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    except openai.APIError as exc:
        report_llm_error(exc, model="gpt-4o-mini", feature="title_generation")
sentry_sdk.flush()
