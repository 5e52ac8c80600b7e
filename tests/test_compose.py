"""docker-compose.yml, the Dockerfile and stack.container: the Procfile's processes as containers.

No Docker engine is needed: the compose file is validated by the compose CLI
when one is installed, its structure is checked against the Procfile, DESIGN's
volume rules and configuration table, and the container entrypoint and
healthchecks are exercised directly.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stack import container as entrypoint
from stack import healthcheck
from stack import procfile as stack_procfile

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
RECORDINGS_VOLUME = "recordings_data"
# Procfile processes that are not compose services: the demo-only simulator,
# and the local redis-server and RADOS Gateway `make run` starts (compose has its
# own redis service and takes any S3 endpoint).
NOT_IN_COMPOSE = {"simulator", "redis", "rgw"}
APP_PROCESSES = {"web", "worker", "beat", "flower"}
# Folders of the image, fixed in the compose file rather than taken from .env (host paths there).
IMAGE_PATHS = {"RECORDINGS_DIR", "RUNTIME_DIR", "EDGE_CACHE_DIR"}


ENTRYPOINT = [sys.executable, "-m", "stack.container"]


# ---- helpers ------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def procfile() -> dict[str, str]:
    return stack_procfile.commands()


def long_running(all_services: dict[str, dict]) -> dict[str, dict]:
    """Services that stay up (one-shot steps have restart "no")."""
    return {name: svc for name, svc in all_services.items() if str(svc.get("restart", "no")) != "no"}


def app_services(all_services: dict[str, dict]) -> dict[str, dict]:
    """Services built from this repository's image: the ones that load Settings."""
    return {name: svc for name, svc in all_services.items() if "build" in svc}


def mounts(svc: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of a service's volumes, short or long syntax."""
    result = []
    for entry in svc.get("volumes", []):
        if isinstance(entry, dict):
            result.append((entry.get("source"), entry["target"], bool(entry.get("read_only"))))
            continue
        parts = entry.split(":")
        mode = parts[2] if len(parts) > 2 else "rw"
        result.append((parts[0], parts[1], "ro" in mode.split(",")))
    return result


def recordings_mounts(svc: dict) -> list[tuple[str, str, bool]]:
    return [m for m in mounts(svc) if m[0] == RECORDINGS_VOLUME]


def published(svc: dict) -> list[tuple[str | None, str, str]]:
    """(host_ip, published, target) of a service's ports, short or long syntax."""
    result = []
    for entry in svc.get("ports", []):
        if isinstance(entry, dict):
            result.append((entry.get("host_ip"), str(entry.get("published")), str(entry["target"])))
            continue
        # Split on the colons outside ${VAR:-default} interpolations.
        parts = re.findall(r"(?:\$\{[^}]*\}|[^:])+", str(entry).split("/")[0])
        host_ip = parts[0] if len(parts) == 3 else None
        result.append((host_ip, parts[-2] if len(parts) > 1 else parts[-1], parts[-1]))
    return result


def environment(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def configuration_variables() -> list[str]:
    """Variable names of README.md's configuration table: what this version implements.

    (DESIGN.md's table also lists variables of features still to come.)
    """
    path = ROOT / "README.md"
    text = path.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            names += re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell)
    assert len(names) >= 15, f"could not read the configuration table of {path}"
    return names


def compose_cli() -> list[str] | None:
    """`docker compose` (v2) when it works, else `docker-compose` (v1), else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def run_compose_config(tmp_path: Path, overrides: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    names = set(configuration_variables()) | {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME"}
    env = {key: value for key, value in os.environ.items() if key not in names}
    env.update(overrides or {})
    return subprocess.run(
        [*cli, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def dockerfile_stages() -> list[tuple[str, list[str]]]:
    """(FROM line, instructions) per stage, ARG defaults substituted, continuations joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", "\n".join(lines), re.M))
    stages: list[tuple[str, list[str]]] = []
    for line in lines:
        line = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), line)
        if line.startswith("FROM "):
            stages.append((line, []))
        elif stages:
            stages[-1][1].append(line)
    return stages


# ---- the compose CLI ----------------------------------------------------------


def test_compose_cli_accepts_the_file(tmp_path):
    result = run_compose_config(tmp_path)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(services())


def test_ports_and_settings_come_from_the_environment(tmp_path):
    names = configuration_variables()
    overrides = {name: f"from-env-{name}" for name in names}
    overrides.update(HTTP_PORT="9090", WEB_PORT="9001", FLOWER_PORT="5999", REDIS_URL="redis://elsewhere:6380/2")
    result = run_compose_config(tmp_path, overrides)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]

    assert published(resolved["nginx"]) == [(None, "9090", "9090")]
    assert published(resolved["flower"]) == [("127.0.0.1", "5999", "5999")]
    for name, svc in app_services(resolved).items():
        env = environment(svc)
        for variable in names:
            if variable in IMAGE_PATHS:
                continue  # see test_recordings_dir_is_where_the_volume_is_mounted
            assert env.get(variable) == overrides[variable], f"{name}: {variable}"


# ---- processes ----------------------------------------------------------------


def test_every_procfile_process_runs_as_a_service_except_simulator_and_local_redis():
    processes = set(procfile())
    assert NOT_IN_COMPOSE <= processes, "the Procfile changed: revisit NOT_IN_COMPOSE"
    running = long_running(services())
    assert set(running) - {"redis"} == processes - NOT_IN_COMPOSE
    assert "redis" in running


def test_app_services_run_their_procfile_line_through_the_entrypoint():
    all_services = services()
    assert list(procfile()) == ["web", "worker", "beat", "flower", "nginx", "simulator", "redis", "rgw"]
    apps = app_services(all_services)
    assert set(apps) & set(procfile()) == APP_PROCESSES
    for name in APP_PROCESSES:
        assert apps[name]["command"] == [name], name
        assert apps[name]["image"] == apps["web"]["image"], "one image for every Python process"


def test_nginx_runs_the_procfile_command_on_the_rendered_folder():
    all_services = services()
    nginx = all_services["nginx"]
    assert nginx["image"].startswith("nginx:")
    command = nginx["command"]
    expected = shlex.split(procfile()["nginx"])
    assert command[0] == expected[0] == "nginx"
    for flag in ("-c", "-g"):
        assert command[command.index(flag) + 1] == expected[expected.index(flag) + 1], flag
    prefix = command[command.index("-p") + 1]
    render = all_services["nginx-config"]
    assert render["command"][:2] == ["render-nginx", prefix]
    assert render["command"][2:] == ["web"], "the upstream must be the web service, not loopback"
    # Both containers see the rendered folder at the same path, on one volume.
    shared = {(src, target) for src, target, _ in mounts(nginx)} & {(s, t) for s, t, _ in mounts(render)}
    assert any(target == prefix for _, target in shared)
    assert all(not ro for src, target, ro in mounts(nginx) if target == prefix), "nginx writes its pid there"


def test_rendered_nginx_config_proxies_to_the_web_service_and_serves_the_volume(settings, tmp_path):
    path = entrypoint.render_nginx(settings, tmp_path / "nginx", "web")
    text = path.read_text()
    assert re.search(rf"upstream web \{{\s*server web:{settings.web_port};", text)
    assert f"127.0.0.1:{settings.web_port}" not in text
    assert f"listen 0.0.0.0:{settings.http_port} " in text
    assert f'alias "{settings.recordings_dir}/$rc_fan/$rc_sid.$rc_fmt";' in text
    assert settings.playback_signing_key in text
    assert path.stat().st_mode & 0o777 == 0o600


def test_container_environment_completes_the_procfile_commands(settings):
    base = {"PATH": os.environ["PATH"]}
    expanded = {}
    for name in APP_PROCESSES:
        env = entrypoint.process_environment(settings, name, base)
        out = subprocess.run(
            ["/bin/sh", "-c", f"echo {procfile()[name]}"], env=env, capture_output=True, text=True, check=True
        )
        expanded[name] = out.stdout.split()
    runtime = entrypoint.DEFAULT_RUNTIME_DIR
    assert f"--address={entrypoint.CONTAINER_BIND_HOST}" in expanded["flower"]
    assert f"--port={settings.flower_port}" in expanded["flower"]
    assert f"--db={runtime}/flower.db" in expanded["flower"]
    assert expanded["beat"][expanded["beat"].index("--schedule") + 1] == f"{runtime}/celerybeat-schedule"
    assert expanded["worker"][expanded["worker"].index("--concurrency") + 1] == "2"
    flower_env = entrypoint.process_environment(settings, "flower", base)
    assert flower_env["FLOWER_BASIC_AUTH"] == settings.flower_basic_auth


def test_gunicorn_in_a_container_binds_every_interface_on_web_port(settings, tmp_path):
    env = entrypoint.process_environment(settings, "web", {"GUNICORN_CMD_ARGS": "--workers 3"})
    env.update(
        PATH=os.environ["PATH"],
        ENV_FILE=str(tmp_path / "no.env"),
        TWILIO_ACCOUNT_SID=settings.twilio_account_sid,
        TWILIO_AUTH_TOKEN=settings.twilio_auth_token,
        API_TOKEN=settings.api_token,
        PLAYBACK_SIGNING_KEY=settings.playback_signing_key,
        RECORDINGS_DIR=str(settings.recordings_dir),
    )
    # Load gunicorn's configuration the way the Procfile's web line does, without serving.
    web_line = shlex.split(procfile()["web"])
    assert web_line[:3] == ["python", "-m", "gunicorn"]
    probe = (
        "import sys\n"
        "from gunicorn.app.wsgiapp import WSGIApplication\n"
        f"sys.argv = ['gunicorn', *{web_line[3:]!r}]\n"
        "cfg = WSGIApplication('%(prog)s [OPTIONS] [APP_MODULE]').cfg\n"
        "print(cfg.bind, cfg.workers)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == f"['0.0.0.0:{settings.web_port}'] 3"


def test_a_bad_setting_stops_the_container_with_one_line(tmp_path):
    env = {"PATH": os.environ["PATH"], "ENV_FILE": str(tmp_path / "no.env"), "HTTP_PORT": "70000"}
    result = subprocess.run(
        [*ENTRYPOINT, "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "recording-cache: configuration error: HTTP_PORT is malformed: expected a port 1-65535, got '70000'"
    ]


def test_entrypoint_runs_other_commands_unchanged():
    result = subprocess.run(
        [*ENTRYPOINT, "/bin/sh", "-c", "echo ran $0", "as-given"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran as-given\n"
    unknown = subprocess.run(
        [*ENTRYPOINT, "no-such-process"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 127
    assert "neither a Procfile process" in unknown.stderr


def test_metrics_folder_starts_empty_on_every_start(tmp_path):
    metrics = tmp_path / "prometheus"
    (metrics / "nested").mkdir(parents=True)
    (metrics / "counter_123.db").write_bytes(b"stale")
    entrypoint.prepare_runtime({"RUNTIME_DIR": str(tmp_path / "run"), "PROMETHEUS_MULTIPROC_DIR": str(metrics)})
    assert metrics.is_dir() and list(metrics.iterdir()) == []
    assert (tmp_path / "run").is_dir()


# ---- volumes ------------------------------------------------------------------


def test_recordings_volume_is_writable_only_in_the_worker():
    all_services = services()
    assert RECORDINGS_VOLUME in compose()["volumes"]
    writable = {name for name, svc in all_services.items() for _, _, ro in recordings_mounts(svc) if not ro}
    assert writable == {"worker"}
    for name in ("nginx", "web"):
        assert recordings_mounts(all_services[name]), f"{name} must mount {RECORDINGS_VOLUME}"
        assert all(ro for _, _, ro in recordings_mounts(all_services[name])), f"{name} must mount it read-only"


def test_recordings_dir_is_where_the_volume_is_mounted():
    all_services = services()
    nginx_target = {target for _, target, _ in recordings_mounts(all_services["nginx"])}
    for name, svc in app_services(all_services).items():
        targets = {target for _, target, _ in recordings_mounts(svc)}
        assert targets == {environment(svc)["RECORDINGS_DIR"]}, name
        # nginx's alias is rendered from RECORDINGS_DIR: it must see the same path.
        assert targets == nginx_target, name


def test_redis_keeps_an_append_only_file_on_its_own_volume():
    redis = services()["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    sources = {src for src, _, _ in mounts(redis)}
    assert sources and sources <= set(compose()["volumes"])
    assert RECORDINGS_VOLUME not in sources


def test_prometheus_multiproc_dir_is_private_to_each_container():
    for name, svc in app_services(services()).items():
        folder = environment(svc)["PROMETHEUS_MULTIPROC_DIR"]
        tmpfs = [entry.split(":")[0] for entry in svc.get("tmpfs", [])]
        assert folder in tmpfs, f"{name}: {folder} is not a tmpfs of the container"
        assert all(target != folder for _, target, _ in mounts(svc)), f"{name}: {folder} must not be shared"


# ---- ports --------------------------------------------------------------------


def test_only_nginx_and_flower_publish_ports():
    all_services = services()
    assert {name for name, svc in all_services.items() if svc.get("ports")} == {"nginx", "flower"}
    assert published(all_services["nginx"]) == [(None, "${HTTP_PORT:-8080}", "${HTTP_PORT:-8080}")]


def test_flower_is_published_on_the_host_loopback_only():
    ports = published(services()["flower"])
    assert ports and all(host_ip == "127.0.0.1" for host_ip, _, _ in ports)


# ---- health and start order ---------------------------------------------------


def test_every_long_running_service_has_a_healthcheck():
    running = long_running(services())
    assert set(running) >= APP_PROCESSES | {"redis", "nginx"}
    for name, svc in running.items():
        check = svc.get("healthcheck") or {}
        assert not check.get("disable"), name
        test = check.get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert svc["restart"] == "unless-stopped", name


def test_app_healthchecks_run_the_check_of_their_own_process():
    for name in APP_PROCESSES:
        test = services()[name]["healthcheck"]["test"]
        assert test[1:] == ["python", "-m", "stack.healthcheck", name], name
        assert name in healthcheck.CHECKS
    assert "redis-cli ping" in " ".join(services()["redis"]["healthcheck"]["test"])
    # nginx's probe is an unsigned playback URL: it must be one the playback
    # location matches, so that the answer is secure_link's 403.
    probe = " ".join(services()["nginx"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:\$\{HTTP_PORT:-8080\}(/\S+)", probe).group(1)
    assert re.fullmatch(r"/recordings/(?:RE|CA)[0-9a-f]{32}\.(?:mp3|wav)", path)
    assert "403" in probe


def test_services_start_only_after_their_dependencies_are_healthy():
    all_services = services()
    for name, svc in all_services.items():
        depends = svc.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            one_shot = str(all_services[target].get("restart", "no")) == "no"
            expected = "service_completed_successfully" if one_shot else "service_healthy"
            assert rule.get("condition") == expected, f"{name} -> {target}"
            if not one_shot:
                assert "healthcheck" in all_services[target], f"{target} has no healthcheck to wait for"
    for name in APP_PROCESSES:
        assert all_services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert all_services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert all_services["nginx"]["depends_on"]["nginx-config"]["condition"] == "service_completed_successfully"


def test_web_health_accepts_a_read_only_volume_but_not_a_down_redis(client, settings, monkeypatch):
    import web.health

    real_statvfs = os.statvfs

    class ReadOnly:
        def __init__(self, path):
            self.f_flag = real_statvfs(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr(web.health.os, "statvfs", ReadOnly)
    monkeypatch.setattr(web.health.os, "access", lambda path, mode: not mode & os.W_OK)
    answer = client.get("/healthz")
    assert answer.status_code == 200, answer.get_json()
    assert healthcheck.web_problem(200, answer.get_json()) is None
    redis_down = {"status": "unavailable", "redis": "error: ConnectionError", "volume": "ok"}
    assert "redis" in healthcheck.web_problem(503, redis_down)
    assert healthcheck.web_problem(503, None)


def test_healthz_fails_when_a_writable_volume_is_not_writable(client, app, monkeypatch):
    import web.health

    monkeypatch.setattr(web.health.os, "access", lambda path, mode: not mode & os.W_OK)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert "writable" in answer.get_json()["volume"]
    # /healthz is public: the problem is named, the path only logged.
    assert str(app.extensions["recording_cache"].settings.recordings_dir) not in answer.get_data(as_text=True)


# ---- configuration ------------------------------------------------------------


def test_every_configuration_variable_reaches_every_service_that_reads_settings():
    names = configuration_variables()
    apps = app_services(services())
    assert set(apps) >= APP_PROCESSES
    for name, svc in apps.items():
        env = environment(svc)
        missing = [variable for variable in names if variable not in env]
        assert not missing, f"{name} does not get {missing}"
        for variable in names:
            if variable in IMAGE_PATHS:
                continue
            assert env[variable].startswith("${" + variable), f"{name}: {variable} is not taken from the environment"


def test_compose_does_not_require_an_env_file():
    for name, svc in services().items():
        assert "env_file" not in svc, f"{name}: Compose v1 fails when the env_file is missing"


# ---- image --------------------------------------------------------------------


def test_image_builds_a_venv_in_one_stage_and_runs_it_as_non_root_in_another():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert all(from_line.split()[1] == "python:3.11-slim" for from_line, _ in stages)
    build_from, build = stages[0]
    assert build_from.endswith(" AS build")
    copies = [line for line in build if line.startswith("COPY ")]
    installs = [i for i, line in enumerate(build) if "pip install" in line]
    assert copies == ["COPY requirements.txt /tmp/requirements.txt"], "only requirements.txt, for layer caching"
    assert installs and build.index(copies[0]) < installs[0]

    _, final = stages[-1]
    joined = "\n".join(final)
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", joined), "no compilers in the final image"
    assert re.search(r"PYTHONUNBUFFERED=1\b", joined)
    user = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    copied = {line.split()[1].rstrip("/") for line in final if line.startswith("COPY ") and "--from" not in line}
    assert copied >= {"worker", "web", "nginx", "simulator", "stack", "Procfile"}
    assert json.loads(final[-1].removeprefix("CMD ")) == ["web"]
    assert "web" in procfile()


def test_secrets_and_local_state_stay_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", "data", "run", ".git"} <= ignored
