"""nginx.conf rendering: paths nginx reads back, and failures that name their cause."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nginx.render import nameservers, njs_module, render
from tests.support import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, SIGNING_KEY, make_settings
from worker import atomic
from worker.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (.ci/run installs it)")
def test_paths_with_spaces_pass_nginx_config_test(tmp_path):
    settings = make_settings(
        tmp_path, RECORDINGS_DIR=str(tmp_path / "my recordings"), PLAYBACK_LOG=str(tmp_path / "my logs" / "play.log")
    )
    runtime = tmp_path / "run dir"
    config = render(settings, runtime, access_log=str(tmp_path / "my logs" / "access.log"))
    text = config.read_text()
    assert f'alias "{settings.recordings_dir}/$rc_fan/$rc_sid.$rc_fmt";' in text
    _check(runtime, config)


def test_a_failed_render_keeps_the_last_config(tmp_path):
    runtime = tmp_path / "run"
    config = render(make_settings(tmp_path), runtime)
    before = config.read_bytes()
    (tmp_path / "a-file").write_text("")
    broken = make_settings(tmp_path, PLAYBACK_LOG=str(tmp_path / "a-file" / "playback.log"))
    with pytest.raises(ConfigError, match="a-file"):
        render(broken, runtime)
    assert config.read_bytes() == before
    assert not list(runtime.glob(atomic.temp_glob(config)))


def test_render_command_names_a_recordings_dir_it_cannot_create(tmp_path):
    (tmp_path / "a-file").write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "ENV_FILE": str(tmp_path / "no.env"),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "API_TOKEN": API_TOKEN,
        "PLAYBACK_SIGNING_KEY": SIGNING_KEY,
        "FLOWER_BASIC_AUTH": "admin:secret",
        "RECORDINGS_DIR": str(tmp_path / "a-file" / "recordings"),
        "PLAYBACK_LOG": str(tmp_path / "playback.log"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "nginx.render", str(tmp_path / "run")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "a-file" in done.stderr


def _check(runtime: Path, config: Path) -> None:
    checked = subprocess.run(
        ["nginx", "-t", "-q", "-p", str(runtime), "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


def _bucket_settings(tmp_path, endpoint: str):
    return make_settings(
        tmp_path,
        STORAGE_URL="s3://recordings-bucket/calls",
        S3_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="key-id",
        AWS_SECRET_ACCESS_KEY="secret",
        EDGE_CACHE_DIR=str(tmp_path / "edge"),
    )


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (.ci/run installs it)")
@pytest.mark.parametrize(
    ("endpoint", "upstream", "proxy_pass"),
    [
        ("http://127.0.0.1:7480", "server 127.0.0.1:7480;", "http://bucket_store/recordings-bucket/calls/$s3_object;"),
        ("https://[::1]", "server [::1]:443;", "https://bucket_store/recordings-bucket/calls/$s3_object;"),
        ("http://localhost:9000", "server 127.0.0.1:9000;", "http://bucket_store/recordings-bucket/calls/$s3_object;"),
        ("https://store.example.net", None, "https://store.example.net/recordings-bucket/calls/$s3_object;"),
    ],
)
def test_the_store_is_an_upstream_by_address_and_resolved_per_request_by_name(
    tmp_path, njs, endpoint, upstream, proxy_pass
):
    runtime = tmp_path / "run"
    config = render(_bucket_settings(tmp_path, endpoint), runtime)
    text = config.read_text()
    assert f"proxy_pass {proxy_pass}" in text
    if upstream:
        assert upstream in text and "resolver " not in text
    else:
        assert "upstream bucket_store" not in text and "resolver " in text  # nginx follows the name's changes
    _check(runtime, config)


def test_nameservers_are_read_as_nginx_writes_them(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch example.net\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\n"
    )
    assert nameservers(conf) == ["10.0.0.2", "[2001:db8::53]"]
    conf.write_text("search example.net\n")
    with pytest.raises(ConfigError, match="names no nameserver"):
        nameservers(conf)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (.ci/run installs it)")
def test_the_bucket_keys_reach_nginx_whatever_they_hold_and_only_its_user_reads_them(tmp_path, njs):
    settings = _bucket_settings(tmp_path, "http://127.0.0.1:7480")
    awkward = 'se"cr$et\\ {x};'  # quotes, $, backslash, braces: nginx.conf syntax if pasted there
    settings = dataclasses.replace(settings, bucket=dataclasses.replace(settings.bucket, secret_access_key=awkward))
    runtime = tmp_path / "run"
    config = render(settings, runtime)
    keys_file = runtime / "njs" / "s3_keys.js"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert awkward not in config.read_text()  # the keys live in the njs folder, not in nginx.conf
    _check(runtime, config)  # nginx loads s3.js and its keys


def test_bucket_mode_without_njs_names_the_package(tmp_path):
    with pytest.raises(ConfigError, match="libnginx-mod-http-js"):
        njs_module(tmp_path / "ngx_http_js_module.so")
