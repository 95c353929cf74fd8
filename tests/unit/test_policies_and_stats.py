"""Method policies (parsing and validation) and the CacheStats snapshot."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cachekit import DEFAULT, CacheStats, MethodPolicy
from cachekit.errors import ConfigurationError
from cachekit.policies import parse_method_policies


def test_policy_defaults() -> None:
    policy = MethodPolicy()
    assert policy.enabled is True
    assert policy.ttl is DEFAULT
    assert policy.none_ttl is DEFAULT
    assert policy.max_payload_bytes is None
    assert policy.min_hits_before_store == 1  # the original's floor of 2 is gone


def test_parse_shorthands_and_dicts() -> None:
    assert MethodPolicy.parse("get", False) == MethodPolicy(enabled=False)
    assert MethodPolicy.parse("get", True) == MethodPolicy()
    given = MethodPolicy(ttl=5.0)
    assert MethodPolicy.parse("get", given) is given
    parsed = MethodPolicy.parse(
        "get",
        {"ttl": timedelta(minutes=1), "none_ttl": 2, "max_payload_bytes": 100, "min_hits_before_store": 3,
         "enabled": True},
    )
    assert parsed == MethodPolicy(enabled=True, ttl=60.0, max_payload_bytes=100, min_hits_before_store=3, none_ttl=2.0)
    assert MethodPolicy.parse("get", {"ttl": None}).ttl is None  # None: no expiry, not "default"
    assert MethodPolicy.parse("get", {"none_ttl": 0}).none_ttl == 0


def test_parse_method_policies_mapping() -> None:
    assert parse_method_policies(None) == {}
    policies = parse_method_policies({"get": {"ttl": 30, "min_hits_before_store": 2}, "get_all": False})
    assert policies["get"].ttl == 30.0
    assert policies["get"].min_hits_before_store == 2
    assert policies["get_all"].enabled is False
    with pytest.raises(ConfigurationError, match="method_policies must be a dict"):
        parse_method_policies(["get"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"tll": 5}, r"unknown keys \['tll'\].*'ttl'"),
        ({"ttl": -1}, r"method_policies\['get'\]\['ttl'\].*>= 0"),
        ({"ttl": "5"}, r"\['ttl'\] must be seconds"),
        ({"none_ttl": -0.5}, r"\['none_ttl'\]"),
        ({"min_hits_before_store": 0}, r"\['min_hits_before_store'\] must be a whole number >= 1"),
        ({"min_hits_before_store": 1.5}, r"min_hits_before_store"),
        ({"max_payload_bytes": 0}, r"max_payload_bytes"),
        ({"max_payload_bytes": True}, r"max_payload_bytes"),
        ({"enabled": "yes"}, r"\['enabled'\] must be a bool"),
        ("fast", r"must be True, False or a dict"),
        (None, r"must be True, False or a dict"),
    ],
)
def test_bad_policies_are_configuration_errors_naming_the_option(option: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MethodPolicy.parse("get", option)


def test_stats_hit_rate() -> None:
    assert CacheStats().hit_rate == 0.0
    assert CacheStats(hits=3, misses=1).hit_rate == 0.75
    assert CacheStats(hits=0, misses=5).hit_rate == 0.0


def test_stats_as_dict_has_every_counter_and_the_hit_rate() -> None:
    out = CacheStats(hits=1, misses=1, sets=2, deletes=3, evictions=4, errors=5, size=6, memory_usage_bytes=7,
                     driver="memory").as_dict()
    assert out["hit_rate"] == 0.5
    for name, value in {"hits": 1, "misses": 1, "sets": 2, "deletes": 3, "evictions": 4, "errors": 5, "size": 6,
                        "memory_usage_bytes": 7, "enabled": True, "driver": "memory"}.items():
        assert out[name] == value, name


def test_stats_add_up() -> None:
    a = CacheStats(hits=1, misses=2, sets=3, errors=1, size=None, memory_usage_bytes=10, driver="memory",
                   enabled=False)
    b = CacheStats(hits=4, misses=1, sets=0, errors=2, size=5, memory_usage_bytes=None, driver="redis")
    total = a + b
    assert (total.hits, total.misses, total.sets, total.errors) == (5, 3, 3, 3)
    assert total.size == 5
    assert total.memory_usage_bytes == 10
    assert total.driver == "mixed"
    assert total.enabled is True
    assert (CacheStats() + CacheStats()).size is None
    assert (CacheStats(driver="memory") + CacheStats(driver="memory")).driver == "memory"


def test_stats_are_a_frozen_snapshot() -> None:
    stats = CacheStats(hits=1)
    with pytest.raises(AttributeError):
        stats.hits = 2  # type: ignore[misc]
