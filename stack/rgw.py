"""A throwaway S3 store on loopback: Ceph's RADOS Gateway on a one-monitor, one-OSD cluster.

    python -m stack.rgw start FOLDER [--port PORT]  start (creating the cluster on first use); prints endpoint and keys
    python -m stack.rgw serve FOLDER                start, then stay in the foreground until SIGTERM/SIGINT stops it all
    python -m stack.rgw stop FOLDER                 stop every daemon started from FOLDER

``make run`` with ``STORAGE_URL`` and no ``S3_ENDPOINT_URL`` starts one under
RUNTIME_DIR/rgw and runs ``serve`` as the Procfile's ``rgw`` process, so Ctrl-C
stops it with the rest.

Debian's radosgw needs a cluster behind it. This one runs with ``auth none``
on 127.0.0.1, keeps its objects in bluestore on a sparse file under FOLDER
(so they survive a restart), and stops by the pid files in FOLDER/run. The S3
user's keys are written to FOLDER/s3-credentials.json. Settings that matter
here, learnt the hard way:

- ``ms_mon_client_mode = crc secure``: without it radosgw waits 300 s for the monitor;
- ``osd_pool_default_size = 1`` and ``mon_allow_pool_size_one``: one OSD holds every pool;
- small caches, so the cluster fits in a couple of hundred MB of memory.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from botocore.exceptions import ClientError

from worker import atomic, objectstore
from worker.bucket_settings import CREDENTIALS_FILE, DEFAULT_REGION, BucketSettings, bucket_settings

from .ports import free_port, port_open

DAEMONS = ("client.rgw.a", "osd.0", "mon.a")  # stop order
BINARIES = ("ceph", "ceph-mon", "ceph-osd", "monmaptool", "radosgw", "radosgw-admin")
PACKAGES = "radosgw ceph-mon ceph-osd ceph-common"
START_TIMEOUT = 120.0


class RgwError(RuntimeError):
    """The cluster did not come up; the message names the step and its log."""


def _conf(folder: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    return f"""[global]
fsid = {fsid}
mon_host = v1:127.0.0.1:{mon_port}
ms_bind_msgr2 = false
ms_mon_client_mode = crc secure
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
mon_data_avail_crit = 0
run_dir = {folder}/run
admin_socket = {folder}/run/$name.asok
pid_file = {folder}/run/$name.pid
log_file = {folder}/log/$name.log
mon_cluster_log_file = {folder}/log/cluster.log

[mon.a]
mon_data = {folder}/mon

[osd.0]
osd_data = {folder}/osd
osd_objectstore = bluestore
bluestore_block_path = {folder}/osd.block
bluestore_block_create = true
bluestore_block_size = 21474836480
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
osd_memory_target = 402653184

[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw_data = {folder}/rgw
rgw_dns_name = 127.0.0.1
"""


def _run(folder: Path, *argv: str, timeout: float = 60) -> str:
    """Run a ceph tool against the folder's cluster; RgwError with its output on failure."""
    result = subprocess.run(
        [*argv, "-c", str(folder / "ceph.conf")], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RgwError(f"{' '.join(argv)} failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}")
    return result.stdout


def _run_retrying(folder: Path, *argv: str, attempts: int = 5, timeout: float = 60) -> str:
    """``_run``, again after a pause when it fails: a monitor that has just started answers some
    first requests with 'wrong fsid' (the OSD's start, its first command)."""
    for attempt in range(1, attempts + 1):
        try:
            return _run(folder, *argv, timeout=timeout)
        except RgwError:
            if attempt == attempts:
                raise
            time.sleep(attempt)
    raise AssertionError("not reached")


def _wait(what: str, ready, folder: Path, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RgwError(f"{what} did not come up within {timeout:.0f} s; logs in {folder / 'log'}")
        time.sleep(0.2)


def _mon_up(folder: Path) -> bool:
    try:
        _run(folder, "ceph", "mon", "stat", timeout=20)
    except (RgwError, subprocess.TimeoutExpired):
        return False  # a monitor that just started turns commands away for a moment
    return True


def _osd_up(folder: Path) -> bool:
    try:
        return json.loads(_run(folder, "ceph", "osd", "stat", "--format", "json", timeout=20)).get("num_up_osds") == 1
    except (RgwError, ValueError, subprocess.TimeoutExpired):
        return False


def _create(folder: Path, rgw_port: int) -> None:
    """A new cluster in an empty folder: monitor map, monitor, one OSD."""
    for sub in ("run", "log", "mon", "osd", "rgw"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    fsid, mon_port = str(uuid.uuid4()), free_port()
    (folder / "ceph.conf").write_text(_conf(folder, fsid, mon_port, rgw_port))
    _run(folder, "monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"v1:127.0.0.1:{mon_port}",
         str(folder / "monmap"))  # fmt: skip
    _run(folder, "ceph-mon", "--mkfs", "-i", "a", "--monmap", str(folder / "monmap"), "--keyring", "/dev/null")
    _run(folder, "ceph-mon", "-i", "a")
    _wait("the monitor", lambda: _mon_up(folder), folder)
    _run_retrying(folder, "ceph", "osd", "create")
    _run_retrying(folder, "ceph", "osd", "crush", "add", "osd.0", "1", "root=default")
    _run(folder, "ceph-osd", "-i", "0", "--mkfs", timeout=START_TIMEOUT)
    _run_retrying(folder, "ceph-osd", "-i", "0")


def _credentials(folder: Path, endpoint: str) -> dict[str, str]:
    """The gateway's endpoint and S3 keys, the user created once per cluster (radosgw-admin, keys we choose).

    Kept in FOLDER/s3-credentials.json (mode 0600), where Settings finds them
    for ``make run`` and ``make call`` (worker.bucket_settings).
    """
    path = folder / CREDENTIALS_FILE
    if path.exists():
        return {**json.loads(path.read_text()), "endpoint": endpoint}
    keys = {"access_key": "RC" + secrets.token_hex(9).upper(), "secret_key": secrets.token_urlsafe(30)}
    _run(folder, "radosgw-admin", "user", "create", "--uid", "recording-cache", "--display-name", "Recording Cache",
         "--access-key", keys["access_key"], "--secret-key", keys["secret_key"], timeout=START_TIMEOUT)  # fmt: skip
    found = {**keys, "endpoint": endpoint}
    atomic.write_bytes(path, json.dumps(found).encode(), mode=0o600)
    return found


def rgw_port(folder: Path) -> int:
    """The port the folder's radosgw listens on."""
    for line in (folder / "ceph.conf").read_text().splitlines():
        if line.startswith("rgw_frontends"):
            return int(line.rsplit(":", 1)[1])
    raise RgwError(f"{folder / 'ceph.conf'} names no rgw_frontends")


def start(folder: Path, port: int | None = None) -> dict[str, str]:
    """Start (creating on first use) the folder's cluster and gateway; the endpoint and keys."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        raise RgwError(f"{', '.join(missing)} not installed: apt-get install {PACKAGES}")
    folder = folder.resolve()
    if not (folder / "ceph.conf").exists():
        _create(folder, port or free_port())
    else:
        for daemon in ("mon.a", "osd.0"):
            if not _alive(folder, daemon):
                kind, ident = daemon.split(".")
                _run_retrying(folder, f"ceph-{kind}", "-i", ident)
    _wait("the OSD", lambda: _osd_up(folder), folder)
    port = rgw_port(folder)
    if not _alive(folder, "client.rgw.a"):
        _run(folder, "radosgw", "-n", "client.rgw.a")
    _wait(f"radosgw on port {port}", lambda: port_open(port), folder)
    return _credentials(folder, f"http://127.0.0.1:{port}")


def _pid(folder: Path, daemon: str) -> int | None:
    try:
        return int((folder / "run" / f"{daemon}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(folder: Path, daemon: str) -> bool:
    pid = _pid(folder, daemon)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(folder: Path, timeout: float = 30) -> None:
    """SIGTERM each daemon started from ``folder`` (gateway first), SIGKILL what outlives ``timeout``."""
    folder = folder.resolve()
    for daemon in DAEMONS:
        pid = _pid(folder, daemon)
        if pid is None or not _alive(folder, daemon):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(folder, daemon) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(folder, daemon):
            os.kill(pid, signal.SIGKILL)


def ensure_bucket(credentials: dict[str, str], bucket: str) -> None:
    """Create ``bucket`` on the gateway unless it exists (the service's own S3 client, the folder's keys)."""
    settings = BucketSettings(
        bucket, "", credentials["endpoint"], credentials["access_key"], credentials["secret_key"], DEFAULT_REGION
    )
    client = objectstore.make_client(settings)
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise RgwError(f"cannot create bucket {bucket}: {exc}") from None


def new_bucket(credentials: dict[str, str], prefix: str = "recordings", name: str | None = None):
    """A new bucket on the gateway: the environment that points a stack at it, and its BucketSettings."""
    name = name or "rc-" + secrets.token_hex(6)
    ensure_bucket(credentials, name)
    env = {
        "STORAGE_URL": f"s3://{name}/{prefix}",
        "S3_ENDPOINT_URL": credentials["endpoint"],
        "AWS_ACCESS_KEY_ID": credentials["access_key"],
        "AWS_SECRET_ACCESS_KEY": credentials["secret_key"],
    }
    return env, bucket_settings(env)


def serve(folder: Path) -> None:
    """Start, then wait in the foreground; SIGTERM or SIGINT stops every daemon (for honcho)."""
    start(folder)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    while not stopping and _alive(folder, "client.rgw.a"):
        time.sleep(0.5)
    stop(folder)


def main(argv: list[str]) -> int:
    """``start``, ``serve`` or ``stop``; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m stack.rgw", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "serve", "stop"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, help="radosgw's port when the cluster is created (default: a free one)")
    args = parser.parse_args(argv)
    try:
        if args.action == "stop":
            stop(args.folder)
            return 0
        if args.action == "serve":
            serve(args.folder)
            return 0
        sys.stdout.write(json.dumps(start(args.folder, args.port)) + "\n")
    except (RgwError, OSError, subprocess.TimeoutExpired) as exc:
        sys.stderr.write(f"stack.rgw: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
