"""Joining or starting Ray for a run: ``connect`` reuses a Ray already initialised in this process, joins
``address`` (``ray start --head`` printed it; "auto" finds a local one) or starts a local instance sized to
the machine, and checks that the cluster has one CPU per worker. ``close`` shuts down only what it started."""
from __future__ import annotations

import logging
import socket

from rnnkit.distributed import require_ray
from rnnkit.errors import UserError


class Cluster:
    """A connection to Ray; ``started`` is True when this object started the Ray instance it will stop."""

    def __init__(self, ray, started: bool):
        self.ray, self.started = ray, started

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False


def _reachable(address: str) -> None:
    """Refuse at once a HOST:PORT nobody listens on (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", "local", "ray://...": left to Ray
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at --ray-address {address} ({exc.strerror or exc}); start "
                        "one with `ray start --head` and give the address it prints") from None


def connect(workers: int, address: str | None = None, what: str = "--workers", log_to_driver: bool = True) -> Cluster:
    ray = require_ray(what)
    started = False
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=log_to_driver)
        try:
            if address:
                _reachable(address)
                ray.init(address=address, **kwargs)
            else:
                ray.init(**kwargs)  # a local instance with all the machine's CPUs
        except ConnectionError as exc:
            raise UserError(f"cannot reach the Ray cluster at --ray-address {address}: {exc}; start one with "
                            "`ray start --head` and give the address it prints") from None
        started = True
    cluster = Cluster(ray, started)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < workers:
        cluster.close()
        raise UserError(f"--workers {workers} needs {workers} CPUs in the Ray cluster (one per worker), it has "
                        f"{cpus}; lower --workers or add nodes (`ray start --address ...` on each)")
    return cluster
