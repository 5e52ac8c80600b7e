"""Entry module for the Celery CLI: ``celery -A worker.celery_worker worker|beat|flower``.

The start-up hooks give every process that runs tasks its own clients
(``worker.resources``): each prefork pool process after the fork, and the
main process for the solo and thread pools.
"""

from celery import signals

from . import resources
from .celery_app import create_celery
from .recovery import MaintenanceTick, RecoverySweep
from .runtime import settings_or_exit

settings = settings_or_exit()
app = create_celery(settings)
app.steps["worker"].add(RecoverySweep)
app.steps["worker"].add(MaintenanceTick)


@signals.worker_init.connect(weak=False)
def _clients_for_main_process(**_kwargs) -> None:
    resources.install(settings, app)


@signals.worker_process_init.connect(weak=False)
def _clients_for_pool_process(**_kwargs) -> None:
    resources.install(settings, app)
