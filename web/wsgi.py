"""gunicorn entry point: ``gunicorn web.wsgi:app``."""

from worker.runtime import settings_or_exit

from . import create_app

# Exit code 4 is gunicorn's "app failed to load": the master stops instead of
# respawning workers that would fail the same way.
app = create_app(settings_or_exit(exit_code=4))
