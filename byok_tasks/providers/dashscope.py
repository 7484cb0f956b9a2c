"""Alibaba Cloud Model Studio / DashScope (Qwen), through its OpenAI-compatible mode.

Codes from https://www.alibabacloud.com/help/en/model-studio/error-code: ``Arrearage`` is an
account in debt, ``Throttling.*`` the rate limits, ``data_inspection_failed`` the content check.
"""

from __future__ import annotations

import re

from .table import ProviderTable

TABLE = ProviderTable(
    name="dashscope",
    hosts=frozenset({"dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com", "dashscope-us.aliyuncs.com"}),
    host_pattern=re.compile(r"dashscope[a-z0-9-]*\.aliyuncs\.com"),
    codes={
        "Arrearage": "quota",
        "Throttling": "rate_limit",
        "Throttling.RateQuota": "rate_limit",
        "Throttling.BurstRate": "rate_limit",
        "Throttling.AllocationQuota": "rate_limit",
        "InvalidApiKey": "invalid_key",
        "DataInspectionFailed": "content_filter",
    },
)
