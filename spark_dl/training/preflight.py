"""Fail fast, before any job, on settings that would make training hang or fail late.

Spark's own reactions to these are a minutes-long wait for slots or an error deep in a
barrier stage; here each check names the setting and the fix. The checks read settings
through a ``get(key, default)`` callable so they are plain functions of the configuration.
"""

from __future__ import annotations

from typing import Callable

Getter = Callable[[str, str], str]
SSL_OVERRIDE = "pytorch.spark.distributor.ignoreSsl"


def _true(get: Getter, key: str) -> bool:
    return get(key, "false").strip().lower() == "true"


def check_cluster(get: Getter, *, local_mode: bool, owner: str) -> None:
    """Settings that break barrier-mode training on executors."""
    if local_mode:
        return
    if _true(get, "spark.dynamicAllocation.enabled"):
        raise ValueError(
            f"{owner} with localMode=False runs a barrier stage, which Spark cannot run with "
            "dynamic allocation (spark.dynamicAllocation.enabled=true). Set "
            "spark.dynamicAllocation.enabled=false for this application, or use localMode=True."
        )
    if _true(get, "spark.ssl.enabled") and not _true(get, SSL_OVERRIDE):
        raise ValueError(
            f"{owner} with localMode=False sends model parameters and data between executors "
            "unencrypted, but this cluster has TLS on (spark.ssl.enabled=true). Set "
            f"{SSL_OVERRIDE}=true to accept that, or use localMode=True."
        )


def check_driver_collect(rows: int, num_features: int, max_result_bytes: int, *,
                         owner: str) -> None:
    """localMode=True collects the training rows to the driver: they must fit its limit."""
    estimate = rows * (4 * num_features + 8 + 8 + 1 + 16)  # features, label, weight, flag, offsets
    if max_result_bytes > 0 and estimate > max_result_bytes:
        raise ValueError(
            f"{owner} with localMode=True collects the {rows} training rows (about "
            f"{estimate / 2**20:.0f} MiB as Arrow) to the driver, over spark.driver.maxResultSize "
            f"({max_result_bytes / 2**20:.0f} MiB). Raise spark.driver.maxResultSize (and driver "
            "memory), or train on the executors with localMode=False."
        )
