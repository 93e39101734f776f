"""Preconditions fail fast with the setting and the fix in the message."""

from __future__ import annotations

import pytest

from spark_dl.training.preflight import check_cluster, check_driver_collect


def _get(settings):
    return lambda key, default: settings.get(key, default)


def test_dynamic_allocation_on_executors():
    with pytest.raises(ValueError, match="spark.dynamicAllocation.enabled=false"):
        check_cluster(_get({"spark.dynamicAllocation.enabled": "true"}), local_mode=False,
                      owner="TorchClassifier")
    check_cluster(_get({"spark.dynamicAllocation.enabled": "true"}), local_mode=True,
                  owner="TorchClassifier")


def test_tls_without_override():
    with pytest.raises(ValueError, match="pytorch.spark.distributor.ignoreSsl=true"):
        check_cluster(_get({"spark.ssl.enabled": "true"}), local_mode=False, owner="X")
    check_cluster(_get({"spark.ssl.enabled": "true",
                        "pytorch.spark.distributor.ignoreSsl": "true"}), local_mode=False,
                  owner="X")


def test_driver_collect_over_max_result_size():
    with pytest.raises(ValueError, match=r"spark.driver.maxResultSize \(1 MiB\).*localMode=False"):
        check_driver_collect(100_000, 64, 2**20, owner="TorchClassifier")
    check_driver_collect(100_000, 64, 0, owner="TorchClassifier")  # 0 = unlimited
    check_driver_collect(10, 64, 2**20, owner="TorchClassifier")


@pytest.mark.parametrize("raw, expected", [("1g", 2**30), ("512m", 512 * 2**20), ("100", 100),
                                           ("2GB", 2 * 2**30), ("0", 0), ("64k", 64 * 1024)])
def test_size_strings_are_read_as_spark_reads_them(raw, expected):
    from spark_dl.conf import byte_string_as_bytes

    assert byte_string_as_bytes(raw, "spark.driver.maxResultSize") == expected


def test_a_bad_size_string_names_the_conf():
    from spark_dl.conf import byte_string_as_bytes

    with pytest.raises(ValueError, match="'spark.driver.maxResultSize' must be a size"):
        byte_string_as_bytes("1.5g", "spark.driver.maxResultSize")
