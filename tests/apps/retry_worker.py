"""Entry point of the retry tests' Celery workers: the test app, plus the tasks under ``llm_retry``."""

from tests.apps.llm_retry_jobs import register
from tests.apps.worker_main import app

register(app)

__all__ = ["app"]
