"""Rows 9-10, bucket mode: playback from a host's edge cache (hits, first plays) against nginx and RGW."""

from __future__ import annotations

import http.client
import socket
import statistics
import time
from pathlib import Path

import requests

from bench import volume
from bench.bucket import BucketDeployment
from bench.context import Context
from bench.procstat import CpuMeter
from bench.report import Check, RowResult
from bench.rows_hits import RANGE, signed_vs_static
from bench.wrk import WrkRun, write_lines

MIB = 1 << 20
PRESIGN_TTL = 3600


def _clean(run: WrkRun) -> bool:
    return run.non_2xx_3xx == 0 and run.socket_errors == 0


def edge_setup(ctx: Context) -> tuple[BucketDeployment, Path, list[str]]:
    """1 MiB recordings in the bucket and, for the static anchor, the same files on the volume; all warmed
    into this host's edge cache and checked to answer ``X-Edge-Cache: HIT``."""
    dep = ctx.bucket()
    if "edge_paths" not in ctx.cache:
        sids = volume.write_large(dep.recordings, ctx.budget.hit_files, MIB)
        dep.put_files([volume.at(dep.recordings, sid, f"{sid}.mp3") for sid in sids], sids)
        paths = volume.signed_paths(sids, dep.stack.signing_key)
        with requests.Session() as session:
            for attempt in ("MISS", "HIT"):  # the first GET fills the cache (one 1 MiB slice), the second hits
                for path in paths:
                    reply = session.get(dep.url(dep.stack.http_port) + path, headers={"Range": RANGE}, timeout=10)
                    if reply.status_code != 206 or reply.headers.get("X-Edge-Cache") != attempt:
                        raise RuntimeError(f"edge warm-up: {reply.status_code} {reply.headers.get('X-Edge-Cache')}")
            expected = volume.mp3_bytes(MIB, sids[0])[:65536]
            for port in (dep.stack.http_port, dep.static_port):
                reply = session.get(dep.url(port) + paths[0], headers={"Range": RANGE}, timeout=5)
                if reply.status_code != 206 or reply.content != expected:
                    raise RuntimeError(f"edge sanity check failed on port {port}: {reply.status_code}")
        ctx.cache["edge_paths"] = (write_lines(dep.stack.base / "edge-paths.txt", paths), sids)
    path, sids = ctx.cache["edge_paths"]
    return dep, path, sids


def row_edge_hit(ctx: Context, result: RowResult) -> None:
    """Row 9: signed hits served from the edge cache vs the same files from a plain static server block."""
    budget = ctx.budget
    dep, paths, sids = edge_setup(ctx)
    per_run = budget.hit_seconds / budget.hit_rounds
    origin_before = dep.origin_gets()
    others = CpuMeter(dep.rgw_pids() + dep.pids("web"))  # nothing behind nginx should work on a hit
    others.start()
    edge, static = signed_vs_static(dep, paths, budget.hit_rounds, per_run, budget.warmup_seconds)
    others_cpu = others.stop()
    origin_gets = dep.origin_gets() - origin_before
    clean = _clean(edge) and _clean(static) and origin_gets == 0
    result.checks.append(
        Check(
            "edge hit req/s: signed URL from the edge cache vs plain static",
            f"{edge.rps:,.0f} req/s",
            f"{static.rps:,.0f} req/s",
            edge.rps / static.rps,
            "≥ 0.9×",
            clean and edge.rps >= 0.9 * static.rps,
        )
    )
    result.checks.append(
        Check(
            "edge hit server CPU: edge cache vs static",
            f"{edge.cpu_us_per_req:.1f} µs/req",
            f"{static.cpu_us_per_req:.1f} µs/req",
            edge.cpu_us_per_req / static.cpu_us_per_req,
            "info",
            None,
        )
    )
    result.details = {
        "edge": edge.as_dict(),
        "static": static.as_dict(),
        "files": budget.hit_files,
        "origin_gets_during_runs": origin_gets,
        "gateway_and_gunicorn_cpu_s_during_runs": round(others_cpu, 3),
        "gateway_start_s": float(dep.gateway["start_s"]),
    }
    result.notes += [
        f"Bucket mode (STORAGE_URL on a local Ceph RADOS Gateway, started in {dep.gateway['start_s']} s for rows "
        f"9-12). {budget.hit_files} recordings of 1 MiB uploaded to the bucket and, for the anchor, the same "
        "files written to the volume; each requested twice through nginx first (a MISS that stores its one "
        "1 MiB slice, then `X-Edge-Cache: HIT`).",
        f"`Range: {RANGE}`, random file per request, wrk 2 threads × 64 connections, {budget.hit_rounds} "
        f"alternating runs (ABBA…) of {per_run:.0f} s per side after a {budget.warmup_seconds:.0f} s warm-up "
        "each. Edge: the rendered hit location (secure_link, slice 1m, proxy_cache, the X-Edge-Cache header); "
        "static: row 1's anchor server block in the same nginx. CPU is utime+stime of the nginx master and workers.",
        f"Requests to the bucket during the runs (bucket-origin.log): {origin_gets}; CPU of radosgw, ceph-osd, "
        f"ceph-mon and gunicorn meanwhile: {others_cpu:.2f} s over {edge.seconds + static.seconds:.0f} s "
        "of load (their idle ticks included).",
        f"Responses: edge {edge.non_2xx_3xx} non-2xx, {edge.socket_errors} socket errors, p99 {edge.p99_ms:.1f} ms; "
        f"static {static.non_2xx_3xx} non-2xx, {static.socket_errors} socket errors, p99 {static.p99_ms:.1f} ms. "
        f"CPU outside the servers and wrk: edge {edge.outside_cpu_s:.1f} s, static {static.outside_cpu_s:.1f} s.",
    ]


def _timed_get(session: requests.Session, url: str) -> tuple[float, requests.Response]:
    started = time.perf_counter()
    reply = session.get(url, timeout=30)
    return time.perf_counter() - started, reply


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the signing origin's unix socket (what the edge location talks to)."""

    def __init__(self, socket_path: Path):
        super().__init__("localhost", timeout=10)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


def _origin_ms(dep: BucketDeployment, sid: str, expected: bytes) -> float:
    """Milliseconds of a GET of the object from nginx's signing origin alone (signed in nginx, checked, no edge)."""
    connection = _UnixConnection(dep.origin_log.with_name("bucket-origin.sock"))
    try:
        started = time.perf_counter()
        connection.request("GET", f"/{sid}.mp3")
        reply = connection.getresponse()
        body = reply.read()
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    if reply.status != 200 or body != expected:
        raise RuntimeError(f"the signing origin answered {reply.status}, {len(body)} bytes for {sid}")
    return seconds * 1000


def row_edge_cold(ctx: Context, result: RowResult) -> None:
    """Row 10: a first play of a 1 MiB object on this host (nginx → signing origin → RGW) vs a direct GET."""
    budget, dep = ctx.budget, ctx.bucket()
    count = budget.cold_objects
    sids = volume.write_large(dep.recordings, count + 2, MIB)  # two warm-ups first
    files = [volume.at(dep.recordings, sid, f"{sid}.mp3") for sid in sids]
    dep.put_files(files, sids)
    expected = {sid: path.read_bytes() for sid, path in zip(sids, files, strict=True)}
    for path in files:
        path.unlink()
        (dep.recordings / volume.STATIC_DIR / path.name).unlink(missing_ok=True)
    client = dep.store.client
    samples, origin_before = [], dep.origin_gets()
    with requests.Session() as edge_session, requests.Session() as direct_session:
        for index, sid in enumerate(sids):
            edge_url = dep.stack.http_url + volume.signed_paths([sid], dep.stack.signing_key)[0]
            direct_url = client.generate_presigned_url(
                "get_object",
                Params={"Bucket": dep.bucket.bucket, "Key": dep.store.media_key(sid, "mp3")},
                ExpiresIn=PRESIGN_TTL,
            )
            run = {}
            for side in ("edge", "direct") if index % 2 == 0 else ("direct", "edge"):
                seconds, reply = _timed_get(edge_session if side == "edge" else direct_session,
                                            edge_url if side == "edge" else direct_url)  # fmt: skip
                if reply.status_code != 200 or reply.content != expected[sid]:
                    raise RuntimeError(f"{side} GET of {sid}: {reply.status_code}, {len(reply.content)} bytes")
                if side == "edge" and reply.headers.get("X-Edge-Cache") != "MISS":
                    raise RuntimeError(f"a first play answered X-Edge-Cache: {reply.headers.get('X-Edge-Cache')}")
                run[side] = seconds * 1000
            run["again"] = _timed_get(edge_session, edge_url)[0] * 1000  # the second play: an edge hit
            run["origin"] = _origin_ms(dep, sid, expected[sid])
            if index >= 2:
                samples.append(run)
    origin_gets = dep.origin_gets() - origin_before

    def med(key: str) -> float:
        return statistics.median(s[key] for s in samples)

    edge_ms, direct_ms = med("edge"), med("direct")
    result.checks.append(
        Check(
            "first play of a cold 1 MiB object (edge miss) vs a direct GET from RGW, median",
            f"{edge_ms:.1f} ms",
            f"{direct_ms:.1f} ms",
            edge_ms / direct_ms,
            "≤ 1.5×",
            edge_ms <= 1.5 * direct_ms,
        )
    )
    result.details = {
        "objects": len(samples),
        "median_ms": {key: round(med(key), 2) for key in ("edge", "direct", "again", "origin")},
        "edge_ms_all": [round(s["edge"], 1) for s in samples],
        "direct_ms_all": [round(s["direct"], 1) for s in samples],
        "origin_gets": origin_gets,
    }
    result.notes += [
        f"{len(samples)} objects of 1 MiB put in the bucket (after 2 warm-ups), never played on this host; one "
        "at a time, alternating which side goes first. Edge: a signed GET of the whole object through nginx "
        "(secure_link, an edge miss for its one 1 MiB slice, the signing origin's GET of RGW signed in "
        "njs, its checksum check, the edge's cache file written), checked to answer `X-Edge-Cache: MISS` "
        "and the object's bytes. Direct: a presigned "
        "(SigV4 query) GET of the same object from RGW. Both with requests, each side on its own keep-alive "
        "session.",
        f"Medians: second play of the same object (an edge hit, whole object) {med('again'):.1f} ms; a GET of "
        "it from nginx's signing origin alone (on its socket: SigV4 in njs, the store's GET, the checksum "
        f"check; no edge cache, a new connection) {med('origin'):.1f} ms. Requests nginx sent to the bucket: "
        f"{origin_gets} for {len(sids)} first plays, as many second plays and as many origin GETs.",
    ]
