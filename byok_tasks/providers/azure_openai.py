"""Azure OpenAI (``<resource>.openai.azure.com``, and the ``cognitiveservices.azure.com`` and
``services.ai.azure.com`` endpoints of Azure AI Foundry), reached through the OpenAI SDK.

Its bodies use the OpenAI shape with Azure's own codes: https://learn.microsoft.com/azure/ai-services/openai/reference
A 429 whose ``retry-after`` is a day (free tiers) is turned into ``quota`` by the
classifier's long-window rule, not here.
"""

from __future__ import annotations

import re

from .table import ProviderTable

TABLE = ProviderTable(
    name="azure_openai",
    host_pattern=re.compile(
        r"[a-z0-9-]+\.(?:openai\.azure\.com|cognitiveservices\.azure\.com|services\.ai\.azure\.com)"
    ),
    codes={
        "DeploymentNotFound": "model_not_found",
        "content_filter": "content_filter",
        "ResponsibleAIPolicyViolation": "content_filter",
        "context_length_exceeded": "context_length",
        "invalid_api_key": "invalid_key",
        "insufficient_quota": "quota",
    },
)
