"""Entry module for the Celery CLI: ``celery -A worker.celery_worker …``."""

from .celery_app import create_celery
from .runtime import settings_or_exit

app = create_celery(settings_or_exit())
