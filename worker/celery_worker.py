"""Entry module for the Celery CLI: ``celery -A worker.celery_worker …``."""

from .runtime import settings_or_exit
from .celery_app import create_celery

app = create_celery(settings_or_exit())
