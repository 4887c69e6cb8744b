"""Distributed training on Ray: Ape-X DQN (:mod:`.apex`) and seed/grid sweeps
(:mod:`.sweep`).

Ray is an optional extra (``pip install 'drlzero[ray]'``), imported only here and only when a
distributed command runs; everything else in drlzero works without it.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

from drlzero.errors import UserError

RAY_EXTRA = "drlzero[ray]"


def require_ray() -> ModuleType:
    """``import ray``, or a one-line :class:`UserError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise UserError(
            f"distributed training needs Ray, which is not installed: pip install '{RAY_EXTRA}'"
        ) from None
    return ray


def init_ray(
    address: str | None, *, object_store_mb: int = 384, num_cpus: int | None = None
) -> bool:
    """Connect to a Ray cluster at ``address``, or start a local Ray sized for this machine.

    A local Ray gets ``num_cpus`` (default: this machine's cores), an object store capped at
    ``object_store_mb`` (Ray's default takes ~30% of RAM, ~7 GB here), no dashboard, and no token
    authentication (only processes of this machine can reach it). Reuses a Ray already running
    in this process (e.g. a test fixture).

    Returns:
        True if this call started or joined Ray (then the caller shuts it down when done).
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.ERROR, "log_to_driver": True}
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            object_store_memory=object_store_mb * 2**20,
            include_dashboard=False,
            **quiet,
        )
    else:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"cannot join the Ray cluster at {address!r} ({first})") from None
    return True
