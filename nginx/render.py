"""Render nginx's config from Settings into a runtime folder.

``python -m nginx.render RUNTIME_DIR`` prints the path of the written config.
"""

from __future__ import annotations

import ipaddress
import json
import os
import resource
import sys
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from worker import atomic, layout, objectstore
from worker.config import Settings, nginx_path
from worker.errors import ConfigError
from worker.runtime import settings_or_exit
from worker.sids import FORMAT, INDEX_SID, PLAYABLE_PREFIXES, pattern

RESOLV_CONF = Path("/etc/resolv.conf")
# Debian's libnginx-mod-http-js, and the official nginx image's (the same path there).
NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
S3_JS = Path(__file__).with_name("s3.js")
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
    nginx_here: bool = True,
) -> Path:
    """Write ``nginx.conf`` (mode 0600: it holds the signing key) and its temp folders.

    ``web_host`` and ``flower_host`` are where gunicorn and Flower listen:
    loopback in `make run`, the services' names under compose. ``nginx_here``
    is False when nginx runs elsewhere (compose's nginx image): its modules
    are not looked for on this machine.
    """
    try:
        runtime_dir = nginx_path(str(runtime_dir))
    except ValueError as exc:
        raise ConfigError(f"runtime folder: {exc}") from None
    nofile = descriptor_limit()
    # The edge cache folder (bucket mode) is nginx's own: it creates it for its workers.
    make_folders(settings.playback_log.parent, *(runtime_dir / sub for sub in TEMP_FOLDERS))
    origin = bucket_origin(settings, check_njs=nginx_here)
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
        recording_sid=pattern("RE"),
        # The same SIDs, capturing the folder a volume keeps them in ($rc_fan, worker.layout).
        fanned_playable_sid=layout.fanned_pattern(*PLAYABLE_PREFIXES),
        fanned_recording_sid=layout.fanned_pattern("RE"),
        index_sid=INDEX_SID,
        media_format=FORMAT,
        bucket=origin,
        edge_cache_dir=settings.edge_cache_dir,
        edge_cache_max_bytes=settings.edge_cache_max_bytes,
        edge_cache_valid=EDGE_CACHE_VALID,
        slice_size=SLICE_SIZE,
        demo=settings.demo,
    )
    if origin is not None:
        write_njs(settings, runtime_dir, origin)
    # Written aside and renamed: a failed render leaves the last good config whole.
    path = runtime_dir / "nginx.conf"
    atomic.write_bytes(path, text.encode("utf-8"), mode=0o600)
    return path


def bucket_origin(settings: Settings, resolv_conf: Path = RESOLV_CONF, check_njs: bool = True) -> dict | None:
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
        "njs_module": njs_module() if check_njs else NJS_MODULE,
    }


def njs_module(path: Path = NJS_MODULE) -> Path:
    """nginx's njs module, which signs its reads of the bucket."""
    if not path.is_file():
        raise ConfigError(f"STORAGE_URL needs nginx's njs module at {path}: apt-get install libnginx-mod-http-js")
    return path


def write_njs(settings: Settings, runtime_dir: Path, origin: dict) -> None:
    """s3.js and the keys it signs with (s3_keys.js, mode 0600) under ``runtime_dir/njs``;
    ``origin`` is ``bucket_origin``'s answer."""
    bucket = settings.bucket
    folder = runtime_dir / "njs"
    make_folders(folder)
    keys = {
        "accessKeyId": bucket.access_key_id,
        "secretAccessKey": bucket.secret_access_key,
        "region": bucket.region,
        "host": origin["host"],
        "path": origin["path"],
        "recordedEtagHeader": f"x-amz-meta-{objectstore.ETAG_KEY}",
    }
    # JSON is a JavaScript literal: any character in a key is written safely.
    atomic.write_bytes(folder / "s3_keys.js", f"export default {json.dumps(keys)};\n".encode(), mode=0o600)
    atomic.write_bytes(folder / "s3.js", S3_JS.read_bytes(), mode=0o644)


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
