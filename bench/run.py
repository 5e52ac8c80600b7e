"""`make bench`: measure Recording Cache against its anchors and write the results.

    .venv/bin/python -m bench.run                 # every row, about 6-7 minutes
    .venv/bin/python -m bench.run --quick         # short runs to check the bench works
    .venv/bin/python -m bench.run --only 1,dedup  # some rows, by number or name

Each row starts what it needs on free ports (``stack.Stack``, from the
Procfile) under a temp folder, measures the real thing and its anchor in the
same run, and every process is stopped at the end whatever happens. A full run
writes ``bench/results/latest.{md,json}``; ``--quick`` or ``--only`` runs
write ``partial.*`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.context import Budget, Context
from bench.procstat import wait_quiet
from bench.report import RowResult, load_snapshot, machine_info, say, table_lines, write_results
from bench.rows_download import row_download, row_memory
from bench.rows_edge import row_edge_cold, row_edge_hit
from bench.rows_hits import row_hit_vs_seed, row_hit_vs_static
from bench.rows_peaks import row_peaks
from bench.rows_pipeline import row_dedup, row_latency
from bench.rows_player import row_player
from bench.rows_recovery import row_recovery
from bench.rows_scale import row_scale
from bench.rows_upload import row_memory_bucket, row_upload
from bench.rows_webhook import row_webhook
from stack.procfile import ROOT

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    """A table row: its number, its ``--only`` name and the function that measures it."""

    number: int
    name: str
    title: str
    run: Callable[[Context, RowResult], None]


# Execution order: rows sharing a set-up run together; the table is sorted by number.
ROWS = [
    Row(1, "hit-vs-static", "Cached hit vs plain static nginx", row_hit_vs_static),
    Row(2, "hit-vs-seed", "Cached hit vs Flask send_file", row_hit_vs_seed),
    Row(3, "webhook", "Webhook validate + enqueue vs bare Flask", row_webhook),
    Row(4, "dedup", "Dedup storm: 200 Range requests, 20 cold recordings", row_dedup),
    Row(7, "latency", "Webhook to verified file, 1 MiB", row_latency),
    Row(5, "download", "Download throughput vs curl", row_download),
    Row(6, "memory", "Worker memory during a large download", row_memory),
    Row(13, "peaks", "Peaks: CPU per minute of 8 kHz audio, mono and dual, MP3 and WAV", row_peaks),
    Row(15, "player", "Bytes a player fetches to draw a 10-minute call and play 5 s", row_player),
    Row(14, "recovery", "Crash recovery: SIGKILL of a download's holder to a new download", row_recovery),
    Row(8, "scale", "1,000,000 (and 10,000,000 with --full) vs 1,000 recordings on the volume", row_scale),
    # Bucket mode: one local RADOS Gateway for rows 9-12, started by the first of them.
    Row(9, "edge-hit", "Bucket mode: edge-cache hit vs plain static nginx", row_edge_hit),
    Row(10, "edge-cold", "Bucket mode: first play on a host vs a direct GET from RGW", row_edge_cold),
    Row(11, "upload", "Bucket mode: upload to RGW vs boto3 upload_file", row_upload),
    Row(12, "memory-bucket", "Bucket mode: worker memory during a large download + upload", row_memory_bucket),
]


def pick(only: str | None) -> list[Row]:
    """The rows ``--only`` names (numbers or names, comma-separated), in execution order."""
    if not only:
        return ROWS
    wanted = {item.strip() for item in only.split(",") if item.strip()}
    known = {str(row.number) for row in ROWS} | {row.name for row in ROWS}
    unknown = wanted - known
    if unknown:
        raise SystemExit(
            f"bench: unknown row(s) {', '.join(sorted(unknown))}; known: {', '.join(r.name for r in ROWS)}"
        )
    return [row for row in ROWS if str(row.number) in wanted or row.name in wanted]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs and small sizes (checks the bench works)")
    parser.add_argument("--only", help="comma-separated row numbers or names: " + ", ".join(r.name for r in ROWS))
    parser.add_argument("--out", help="results file stem under bench/results, or a path (default latest, or partial)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed, not only on errors")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs, configs) afterwards")
    parser.add_argument(
        "--full", action="store_true", help="row 8 also with 10,000,000 recordings (about 40 GB of disk, minutes)"
    )
    parser.add_argument(
        "--scale-dir",
        type=Path,
        help="parent folder of row 8's volumes (default: the temp folder; tmpfs has too few inodes for 1M)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the chosen rows, print the table, write the results; 1 on an error (or a miss with --strict)."""
    args = parse_args(argv)
    rows = pick(args.only)
    stem = args.out or ("partial" if args.quick or args.only else "latest")
    budget = Budget.quick_budget() if args.quick else Budget()
    if args.full:
        budget = dataclasses.replace(budget, scale_huge=10_000_000)
    base = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    ctx = Context(base, budget, args.scale_dir or base, keep=args.keep)
    machine = machine_info()
    say(f"bench: {len(rows)} row(s), {'quick' if args.quick else 'full'} budget, temp folder {base}")
    results: list[RowResult] = []
    started = time.monotonic()
    try:
        for index, row in enumerate(rows, 1):
            result = RowResult(row.number, row.name, row.title)
            say(f"[{index}/{len(rows)}] row {row.number} {row.name}: {row.title} ...")
            quiet, load_before = wait_quiet(3 if args.quick else 15), load_snapshot()
            row_started = time.monotonic()
            try:
                row.run(ctx, result)
            except Exception as exc:  # one broken row must not hide the others' figures
                result.error = f"{type(exc).__name__}: {exc}"
                result.notes.append("error: " + traceback.format_exc(limit=4).replace("\n", " ")[-1500:])
            result.seconds = time.monotonic() - row_started
            result.details.update(quiet=quiet, load_before=load_before, load_after=load_snapshot())
            results.append(result)
            marks = ", ".join(("PASS" if c.passed else "FAIL" if c.passed is False else "info") for c in result.checks)
            say(f"      {result.seconds:.0f} s: {result.error or marks}")
    finally:
        ctx.close()
    total = time.monotonic() - started
    meta = {"machine": machine, "mode": "quick" if args.quick else "full", "total_seconds": round(total, 1)}
    meta["rows_run"] = [row.name for row in rows]
    md_path, json_path = write_results(RESULTS, stem, results, meta)
    say("")
    for line in table_lines(results):
        say(line)
    shown = [path.relative_to(ROOT) if path.is_relative_to(ROOT) else path for path in (md_path, json_path)]
    say(f"\ntotal {total:.0f} s; wrote {shown[0]} and {shown[1]}")
    errors = any(r.error for r in results)
    missed = any(c.passed is False for r in results for c in r.checks)
    return 1 if errors or (args.strict and missed) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
