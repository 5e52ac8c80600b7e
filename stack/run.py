"""`make run`: prepare and start every process of the Procfile in the foreground.

Checks the settings (one line and exit on a bad one), renders nginx's config,
starts a local redis-server only when none answers at REDIS_URL, starts the
Twilio simulator in demo mode, then runs the processes with honcho's Manager
(``stack.supervise``): one ready line once all answer, every process stopped
on Ctrl-C or SIGTERM, and status 0 after such a clean stop.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import redis

from nginx.render import make_folders, render
from worker import broker
from worker.bucket_settings import LOCAL_GATEWAY_DIR, bucket_settings
from worker.config import Settings, merged_environment, nginx_path
from worker.errors import ConfigError
from worker.runtime import settings_or_exit

from . import rgw, supervise
from .procfile import ROOT, settings_environment

log = logging.getLogger("recording_cache.run")


def redis_answers(url: str) -> bool:
    """True when a Redis server answers PING at ``url``."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def warn_if_not_durable(settings: Settings) -> str | None:
    """Say at start when the reused Redis would lose the queue on its restart (one line); the warning."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    try:
        warning = broker.persistence_warning(client)
    finally:
        client.close()
    if warning:
        log.warning("run.redis_not_durable", extra={"warning": warning})
    return warning


def redis_to_start(settings: Settings) -> dict[str, str] | None:
    """Environment for a local redis-server, or None when one answers already."""
    if redis_answers(settings.redis_url):
        return None
    parts = urlsplit(settings.redis_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(f"recording-cache: REDIS_URL does not answer: {parts.hostname}:{parts.port}\n")
        raise SystemExit(2)
    data = settings.runtime_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    return {"REDIS_PORT": str(parts.port or 6379), "REDIS_DIR": str(data)}


def start_local_bucket() -> bool:
    """With STORAGE_URL but neither S3_ENDPOINT_URL nor AWS keys: start a local RADOS Gateway
    (stack.rgw) under RUNTIME_DIR/rgw and create the bucket; Settings then read its
    endpoint and keys from there. (Keys without an endpoint mean AWS itself.)"""
    env = {k: v.strip() for k, v in merged_environment().items()}
    given = [env.get(name) for name in ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    if not env.get("STORAGE_URL") or any(given):
        return False
    folder = nginx_path(env.get("RUNTIME_DIR") or "./run") / LOCAL_GATEWAY_DIR
    try:
        bucket = bucket_settings({**env, "AWS_ACCESS_KEY_ID": "-", "AWS_SECRET_ACCESS_KEY": "-"}).bucket
        credentials = rgw.start(folder)
        rgw.ensure_bucket(credentials, bucket)
    except (ConfigError, rgw.RgwError, OSError) as exc:
        sys.stderr.write(f"recording-cache: {exc}\n")
        raise SystemExit(2) from None
    log.info("run.rgw_local", extra={"endpoint": credentials["endpoint"], "bucket": bucket})
    return True


def main() -> None:
    """Prepare the runtime folder and exec honcho with the processes to run."""
    local_bucket = start_local_bucket()
    settings = settings_or_exit()
    runtime_dir = settings.runtime_dir
    metrics_dir = runtime_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    try:
        make_folders(settings.recordings_dir, metrics_dir)
        render(settings, runtime_dir)
    except ConfigError as exc:
        sys.stderr.write(f"recording-cache: {exc}\n")
        raise SystemExit(2) from None

    env = dict(os.environ)
    env.update(
        settings_environment(settings),
        RUNTIME_DIR=str(runtime_dir),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    processes = ["web", "worker", "beat", "flower", "nginx"]
    if local_bucket:  # honcho stops it with the rest
        processes.append("rgw")
    redis_env = redis_to_start(settings)
    if redis_env:
        env.update(redis_env)
        processes.append("redis")
        log.info("run.redis_local", extra={"port": redis_env["REDIS_PORT"]})
    else:
        warn_if_not_durable(settings)
    if settings.demo:
        env.update(SIM_ACCOUNT_SID=settings.twilio_account_sid, SIM_AUTH_TOKEN=settings.twilio_auth_token)
        processes.append("simulator")
        announce_demo(settings)
    log.info("run.start", extra={"processes": ",".join(processes), "http_port": settings.http_port})
    os.chdir(ROOT)
    # Settings already merged `.env` under the environment: honcho's Manager
    # is given the environment as it stands, and reads no `.env` of its own.
    raise SystemExit(supervise.run(settings, processes, env))


def announce_demo(settings: Settings) -> None:
    """Print where to look and the generated secrets, once per start."""
    base = f"http://127.0.0.1:{settings.http_port}"
    user, password = settings.flower_credentials
    sys.stdout.write(
        "\nRecording Cache demo (no Twilio credentials: the bundled Twilio simulator plays Twilio)\n"
        f"  demo page      {base}/\n"
        f"  simulate call  make call\n"
        f"  API            curl -H 'Authorization: Bearer {settings.api_token}' {base}/api/recordings/<sid>\n"
        f"  Flower         http://127.0.0.1:{settings.flower_port}/  user {user} password {password}\n"
        f"  metrics        {base}/metrics\n"
        f"  secrets kept in {settings.state_dir / 'demo-secrets.json'}\n\n"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
