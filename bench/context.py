"""What every row shares: the run's budget, temp folders and the running deployments."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.bucket import BucketDeployment, start_gateway
from bench.deploy import Deployment
from stack import rgw


@dataclass(frozen=True)
class Budget:
    """Durations and sizes; ``quick()`` shrinks them to check the bench works."""

    quick: bool = False
    hit_seconds: float = 10.0  # per side, split over hit_rounds alternating runs
    hit_rounds: int = 2
    warmup_seconds: float = 2.0
    hit_files: int = 200
    webhook_seconds: float = 10.0
    webhook_bodies: int = 40_000
    dedup_recordings: int = 20
    dedup_clients: int = 200
    download_mib: int = 200
    download_reps: int = 5
    memory_mib: int = 500
    latency_samples: int = 30
    scale_small: int = 1_000
    scale_big: int = 1_000_000
    scale_huge: int = 0  # 10,000,000 with --full: minutes to write and remove
    scale_startups: int = 7
    api_requests: int = 2000
    scale_hit_seconds: float = 5.0
    cold_objects: int = 20
    upload_mib: int = 200
    upload_reps: int = 3

    @classmethod
    def quick_budget(cls) -> Budget:
        """Short runs and small sizes: minutes become seconds, figures become rough."""
        return cls(
            quick=True,
            hit_seconds=2.0,
            hit_rounds=1,
            warmup_seconds=1.0,
            hit_files=50,
            webhook_seconds=2.0,
            webhook_bodies=6_000,
            download_mib=32,
            download_reps=1,
            memory_mib=64,
            latency_samples=8,
            scale_big=10_000,
            scale_huge=0,
            scale_startups=1,
            api_requests=60,
            scale_hit_seconds=2.0,
            cold_objects=5,
            upload_mib=64,  # still a multipart upload (worker.objectstore.MULTIPART_THRESHOLD)
            upload_reps=1,
        )


@dataclass
class Context:
    """Deployments are started on first use and stopped by ``close()``."""

    base: Path
    budget: Budget
    scale_volume_parent: Path
    keep: bool = False  # leave the temp folders for a post-mortem
    cache: dict = field(default_factory=dict)
    _main: Deployment | None = None
    _scale: Deployment | None = None
    _scale_volume: Path | None = None
    _bucket: BucketDeployment | None = None
    _gateway_folder: Path | None = None

    def main(self) -> Deployment:
        """redis, simulator, gunicorn and nginx on a volume on disk (rows 1-7)."""
        if self._main is None:
            self._main = Deployment(self.base / "main")
            self._main.start(simulator=True)
        return self._main

    def scale(self) -> tuple[Deployment, Path]:
        """A fresh deployment (no simulator) and the folder row 8 writes its volumes in."""
        self.stop_main()
        if self._scale is None:
            self._scale_volume = self.scale_volume_parent / f"{self.base.name}-scale"
            (self._scale_volume / "1k").mkdir(parents=True)
            self._scale = Deployment(self.base / "scale", recordings_dir=self._scale_volume / "1k")
            self._scale.start(simulator=False)
        return self._scale, self._scale_volume

    def bucket(self) -> BucketDeployment:
        """A local RADOS Gateway (started once) and a deployment in bucket mode on it (rows 9-12).

        Rows 1-8's processes are stopped first: they would only add noise.
        """
        if self._bucket is None:
            self.stop_main()
            self.stop_scale()
            self._gateway_folder = self.base / "rgw"  # set first: close() stops whatever start() got going
            gateway = start_gateway(self._gateway_folder)
            self._bucket = BucketDeployment(self.base / "bucket", gateway)
            self._bucket.start(simulator=True)
        return self._bucket

    def stop_main(self) -> None:
        """Stop rows 1-7's processes (their volume stays until ``close()``)."""
        if self._main is not None:
            self._main.close()
            self._main = None

    def stop_scale(self) -> None:
        """Stop row 8's processes (its volumes stay until ``close()``)."""
        if self._scale is not None:
            self._scale.close()
            self._scale = None

    def close(self) -> None:
        """Stop everything and remove every file the run created."""
        try:
            self.stop_main()
            self.stop_scale()
            if self._bucket is not None:
                self._bucket.close()
                self._bucket = None
        finally:
            if self._gateway_folder is not None:
                rgw.stop(self._gateway_folder)
                self._gateway_folder = None
            if self._scale_volume is not None and not self.keep:
                # Millions of entries: rm's C loop takes a fraction of shutil.rmtree's time.
                subprocess.run(["rm", "-rf", "--one-file-system", str(self._scale_volume)], check=False)
            if not self.keep:
                shutil.rmtree(self.base, ignore_errors=True)
