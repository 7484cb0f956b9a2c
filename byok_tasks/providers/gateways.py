"""Gateways: LiteLLM proxy, Cloudflare AI Gateway, Helicone, Portkey (OpenRouter has its own module).

A gateway answers for itself when its own key or budget fails, and passes the provider's
answer through otherwise. The classifier names the provider behind the gateway from what
is below (the path, the body's markers); these tables read the gateway's own failures.

- Cloudflare AI Gateway names the provider in the path,
  ``/v1/{account}/{gateway}/{provider}/...``; its own errors are ``{"success": false,
  "error": [{"code": 2xxx, ...}]}`` (https://developers.cloudflare.com/ai-gateway/reference/errors/).
- Helicone's proxy hosts say which provider they front (``oai.helicone.ai`` is OpenAI's);
  its own answers carry ``"success": false``.
- Portkey adds ``"provider"`` to a provider's error body; its own are ``{"status": "failure"}``.
- LiteLLM's proxy runs on the team's own host: it is known by its error types
  (``budget_exceeded``, ``auth_error``) and by the ``litellm.<Error>: <Provider>Exception``
  prefix of a passed-through message, which also names the provider.
"""

from __future__ import annotations

import re

from .table import ProviderTable

LITELLM = ProviderTable(name="litellm", codes={"budget_exceeded": "quota", "auth_error": "invalid_key"})
CLOUDFLARE = ProviderTable(
    name="cloudflare",
    hosts=frozenset({"gateway.ai.cloudflare.com"}),
    codes={"2009": "invalid_key", "2003": "rate_limit", "2016": "content_filter", "2017": "content_filter"},
)
HELICONE = ProviderTable(
    name="helicone",
    hosts=frozenset({"ai-gateway.helicone.ai", "gateway.helicone.ai"}),
)
PORTKEY = ProviderTable(name="portkey", hosts=frozenset({"api.portkey.ai"}))

# Helicone's provider-specific proxies, by host: the provider behind each.
HELICONE_PROXIES = {
    "oai.helicone.ai": "openai",
    "anthropic.helicone.ai": "anthropic",
    "groq.helicone.ai": "groq",
    "gemini.helicone.ai": "google",
    "openrouter.helicone.ai": "openrouter",
    "together.helicone.ai": "together",
    "mistral.helicone.ai": "mistral",
    "deepseek.helicone.ai": "deepseek",
    "x.helicone.ai": "xai",
    "fireworks.helicone.ai": "fireworks",
}

# Cloudflare's path names for providers, where they differ from ours.
CLOUDFLARE_PATH_NAMES = {
    "azure-openai": "azure_openai",
    "google-ai-studio": "google",
    "google-vertex-ai": "google",
    "aws-bedrock": "bedrock",
    "perplexity-ai": "perplexity",
    "grok": "xai",
    "workers-ai": "cloudflare",
    "compat": "cloudflare",
}

# The provider names that gateways and wrapper libraries write (OpenRouter's
# ``provider_name``, LiteLLM's ``llm_provider`` and exception prefixes), lowercased and
# stripped of spaces, dashes and underscores, where they differ from ours.
ALIASES = {
    "azure": "azure_openai",
    "azureai": "azure_openai",
    "azureopenai": "azure_openai",
    "gemini": "google",
    "googleaistudio": "google",
    "googlevertex": "google",
    "vertex": "google",
    "vertexai": "google",
    "vertexaibeta": "google",
    "amazonbedrock": "bedrock",
    "bedrockconverse": "bedrock",
    "awsbedrock": "bedrock",
    "togetherai": "together",
    "fireworksai": "fireworks",
    "perplexityai": "perplexity",
    "alibaba": "dashscope",
    "qwen": "dashscope",
    "textcompletionopenai": "openai",
    "openaicompatible": "openai",
    "grok": "xai",
    "mistralai": "mistral",
    "coherechat": "cohere",
}

# "litellm.RateLimitError: AnthropicException - ..." (the proxy and the library both write it).
LITELLM_PREFIX = re.compile(r"litellm\.[A-Za-z]+: (?:[A-Za-z]+: )?([A-Za-z_]+?)Exception\b")
