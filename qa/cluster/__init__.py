"""Running the build and the search on a Ray cluster (the optional extra `.[cluster]`).

`qa index build --cluster ADDRESS` embeds on the cluster's workers (`build.py`); `qa serve
--cluster ADDRESS` serves each shard of a sharded index from Ray Serve (`serve.py`). Without
`--cluster` nothing here is imported and Ray need not be installed.
"""

from __future__ import annotations

from typing import Any

LOCAL = "local"  # a new single-machine cluster in this process (tests, trials)


def connect(address: str, *, num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at `address` ("auto": the one started on this machine by `ray
    start`, else a new local one; "local": always a new local one); returns the `ray` module."""
    try:
        import ray
    except ImportError as error:
        raise ValueError(
            "--cluster needs Ray: pip install -e '.[cluster]' (or 'ray[data,serve]')"
        ) from error
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
    if address == LOCAL:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
    elif address == "auto":
        try:
            ray.init(address="auto", **options)
        except ConnectionError:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
    else:
        ray.init(address=address, **options)
    return ray
