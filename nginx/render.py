"""Render nginx's config from Settings into a runtime folder.

``python -m nginx.render RUNTIME_DIR`` prints the path of the written config.
"""

from __future__ import annotations

import ipaddress
import os
import resource
import sys
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from worker import atomic, objectstore, tiers
from worker.config import Settings, nginx_path
from worker.errors import ConfigError
from worker.runtime import settings_or_exit
from worker.sids import FORMAT, PLAYABLE_SID, pattern

RESOLV_CONF = Path("/etc/resolv.conf")
TEMPLATE = "nginx.conf.j2"
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
WORKER_CONNECTIONS = 4096
# Recordings never change once stored: an edge copy stays until the cache manager needs the room.
EDGE_CACHE_VALID = "30d"
SLICE_SIZE = "1m"


def descriptor_limit() -> int:
    """``worker_rlimit_nofile``: the hard limit (nginx cannot raise it), at most 65536."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)


def render(
    settings: Settings,
    runtime_dir: Path,
    access_log: str = "/dev/stdout",
    worker_processes: str = "auto",
    web_host: str = "127.0.0.1",
    flower_host: str = "127.0.0.1",
) -> Path:
    """Write ``nginx.conf`` (mode 0600: it holds the signing key) and its temp folders.

    ``web_host`` and ``flower_host`` are where gunicorn and Flower listen:
    loopback in `make run`, the services' names under compose.
    """
    try:
        runtime_dir = nginx_path(str(runtime_dir))
    except ValueError as exc:
        raise ConfigError(f"runtime folder: {exc}") from None
    nofile = descriptor_limit()
    # The edge cache folder (bucket mode) is nginx's own: it creates it for its workers.
    make_folders(settings.playback_log.parent, *(runtime_dir / sub for sub in TEMP_FOLDERS))
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent), undefined=StrictUndefined, keep_trailing_newline=True
    )
    text = env.get_template(TEMPLATE).render(
        run_as_root=os.geteuid() == 0,
        worker_processes=worker_processes,
        runtime_dir=runtime_dir,
        access_log=access_log,
        web_host=web_host,
        nofile=nofile,
        worker_connections=WORKER_CONNECTIONS,
        playback_log=settings.playback_log,
        flower_host=flower_host,
        flower_port=settings.flower_port,
        flower_url_prefix=settings.flower_url_prefix,
        web_port=settings.web_port,
        http_listen=settings.http_listen,
        simulator_port=settings.simulator_port,
        recordings_dir=settings.recordings_dir,
        signing_key=settings.playback_signing_key,
        playable_sid=PLAYABLE_SID,
        recording_sid=pattern("RE"),
        call_sid=pattern("CA"),
        media_format=FORMAT,
        bucket=bucket_origin(settings),
        edge_cache_dir=settings.edge_cache_dir,
        edge_cache_max_bytes=settings.edge_cache_max_bytes,
        edge_cache_valid=EDGE_CACHE_VALID,
        slice_size=SLICE_SIZE,
        demo=settings.demo,
    )
    # Written aside and renamed: a failed render leaves the last good config whole.
    path = runtime_dir / "nginx.conf"
    atomic.write_bytes(path, text.encode("utf-8"), mode=0o600)
    return path


def bucket_origin(settings: Settings, resolv_conf: Path = RESOLV_CONF) -> dict | None:
    """How nginx's signing origin reaches the bucket: origin, Host, path, and the store's address.

    An endpoint named by an IP address is an upstream with kept-alive
    connections. A host name is resolved at request time (nginx 1.22's
    upstreams resolve only at start, and an object store's addresses change)
    with the nameservers of ``resolv_conf``, one new connection per edge miss.
    """
    if settings.bucket is None:
        return None
    base, path = objectstore.origin(settings.bucket)
    parts = urlsplit(base)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    address = _ip_address(parts.hostname or "")
    return {
        "origin": base,
        "host": parts.netloc,
        "server_name": parts.hostname,
        "path": path,
        "tls": tls,
        "server": f"{address}:{port}" if address else None,
        "resolver": None if address else nameservers(resolv_conf),
        # The store's own headers, and the object's metadata, stay out of the edge cache.
        "hidden_headers": ["x-amz-request-id", "x-rgw-object-type", "x-amz-storage-class", *tiers.metadata_headers()],
    }


def _ip_address(host: str) -> str | None:
    """``host`` as nginx writes an address (IPv6 in brackets), or None for a name."""
    if host == "localhost":  # nginx's resolver asks DNS, which need not know it
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 4:
        return str(address)
    return None if address.scope_id else f"[{address}]"  # nginx takes no "%zone"


def nameservers(resolv_conf: Path) -> list[str]:
    """The nameservers of resolv.conf, as nginx's ``resolver`` takes them."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"S3_ENDPOINT_URL names a host and {resolv_conf} is unreadable: {exc.strerror}") from None
    found = [
        _ip_address(line.split()[1]) for line in lines if line.split()[:1] == ["nameserver"] and len(line.split()) > 1
    ]
    found = [address for address in found if address]
    if not found:
        raise ConfigError(f"S3_ENDPOINT_URL names a host and {resolv_conf} names no nameserver for nginx to resolve it")
    return found


def make_folders(*folders: Path) -> None:
    """Create each folder (and its parents), or raise ConfigError naming the one that failed."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create folder {folder}: {exc.strerror or exc}") from None


def main(argv: list[str]) -> int:
    """Render into the folder given as the only argument."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m nginx.render RUNTIME_DIR\n")
        return 2
    settings = settings_or_exit()
    try:
        make_folders(settings.recordings_dir)
        path = render(settings, Path(argv[0]))
    except ConfigError as exc:
        sys.stderr.write(f"recording-cache: {exc}\n")
        return 2
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
