"""The error tree, and typed, explanatory errors for bad input."""

from __future__ import annotations

from typing import Any

import pytest

from cachekit import Cache, cached
from cachekit import errors as errors_module
from cachekit.drivers.memory import MemoryDriver
from cachekit.errors import (
    CacheError,
    CacheWarning,
    CircuitOpenError,
    CodecError,
    ConfigurationError,
    CorruptEntryError,
    DriverError,
    DriverNotFound,
    DriverUnavailable,
    InsecureSerializerWarning,
    KeyResolverError,
    SerializationError,
    UncacheableValueWarning,
)

# As drawn in the docstring of cachekit/errors.py.
TREE: dict[type[BaseException], tuple[type[BaseException], ...]] = {
    CacheError: (Exception,),
    ConfigurationError: (CacheError, ValueError),
    DriverNotFound: (ConfigurationError, LookupError),
    DriverError: (CacheError,),
    DriverUnavailable: (DriverError, ConnectionError),
    CircuitOpenError: (DriverUnavailable,),
    CodecError: (CacheError,),
    SerializationError: (CodecError, TypeError),
    CorruptEntryError: (CodecError, ValueError),
    KeyResolverError: (CacheError, LookupError),
    CacheWarning: (UserWarning,),
    UncacheableValueWarning: (CacheWarning,),
    InsecureSerializerWarning: (CacheWarning,),
}


@pytest.mark.parametrize(("cls", "bases"), list(TREE.items()), ids=lambda v: getattr(v, "__name__", ""))
def test_error_tree(cls: type[BaseException], bases: tuple[type[BaseException], ...]) -> None:
    assert cls.__bases__ == bases
    assert cls.__doc__  # each says when it is raised


def test_the_tree_covers_every_exported_error() -> None:
    assert {getattr(errors_module, name) for name in errors_module.__all__} == set(TREE)


def test_callers_catching_builtins_keep_working() -> None:
    with pytest.raises(ValueError):
        Cache(ttl=-1)
    with pytest.raises(LookupError):
        Cache(driver="nope")
    with pytest.raises(ConnectionError):
        raise DriverUnavailable("redis down")
    with pytest.raises(CacheError):
        raise CorruptEntryError("bad blob")


# -- bad input: a typed error whose message says what was wrong and how to fix it ----------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Cache().get(""), ConfigurationError, r"cache key must be a non-empty string; got ''"),
        (lambda: Cache().set(42, 1), ConfigurationError, r"cache key must be a non-empty string; got int 42"),
        (lambda: Cache().delete(None), ConfigurationError, r"non-empty string; got NoneType None"),
        (lambda: Cache(ttl=-5), ConfigurationError, r"ttl must be a finite number of seconds >= 0 \(None means no "),
        (lambda: Cache().set("k", 1, ttl=-1), ConfigurationError, r"ttl must be .* >= 0"),
        (lambda: cached(ttl=-1), ConfigurationError, r"ttl"),
        (lambda: Cache(driver="nope"), DriverNotFound, r"unknown cache driver 'nope'; use one of \[.*'memory'.*\]"),
        (lambda: Cache(config={"eviction_policy": "random"}), ConfigurationError,
         r"eviction_policy must be one of \['lru', 'fifo', 'tinylfu'\]; got 'random'"),
        (lambda: Cache(config={"max_memory_bytes": 1 << 20, "max_memory_percent": 0.1}), ConfigurationError,
         r"either max_memory_bytes or max_memory_percent, not both"),
        (lambda: Cache(config={"max_memory_percent": 0}), ConfigurationError, r"fraction in \(0, 1\].*got 0"),
        (lambda: Cache(config={"max_memory_percent": 1.5}), ConfigurationError, r"fraction in \(0, 1\].*got 1.5"),
        (lambda: Cache(config={"max_memory_percent": -0.1}), ConfigurationError, r"fraction in \(0, 1\].*got -0.1"),
        (lambda: Cache(config={"max_memory_percent": "10%"}), ConfigurationError, r"fraction in \(0, 1\]"),
        (lambda: Cache(config={"max_memory_bytes": 0}), ConfigurationError, r"max_memory_bytes .* > 0"),
        (lambda: Cache(config={"max_size": -1}), ConfigurationError, r"max_size .* >= 0"),
        (lambda: Cache(config={"nope": 1}), ConfigurationError, r"unknown memory driver option 'nope'; accepted"),
        (lambda: Cache(config={"serializer": "yaml"}), ConfigurationError, r"unknown serializer 'yaml'; use one of"),
        (lambda: Cache(method_policies={"get": {"ttl": -1}}), ConfigurationError, r"method_policies\['get'\]"),
        (lambda: Cache().key_for("frobnicate", resource="users"), KeyResolverError,
         r"no key resolver for action 'frobnicate'.*register_key_resolver"),
    ],
    ids=[
        "empty-key", "int-key", "none-key", "negative-ttl", "negative-set-ttl", "negative-decorator-ttl",
        "unknown-driver", "unknown-eviction-policy", "both-memory-limits", "percent-0", "percent-1.5",
        "percent-negative", "percent-string", "bytes-0", "max-size-negative", "unknown-option",
        "unknown-serializer", "bad-policy", "unknown-action",
    ],
)
def test_bad_input_gets_a_typed_explanatory_error(make: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_max_memory_percent_of_one_is_accepted() -> None:
    driver = Cache(config={"max_memory_percent": 1}).driver
    assert isinstance(driver, MemoryDriver)
    assert driver.get_memory_stats()["max_memory_percent"] == 1  # echoed as given


def test_a_missing_optional_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import cachekit.drivers

    # What an uninstalled extra looks like to the registry, without leaving the name registered afterwards.
    monkeypatch.setitem(cachekit.drivers._REGISTRY, "needs-missing", "cachekit_test_no_such_module.driver:Driver")
    with pytest.raises(DriverNotFound, match="not installed"):
        Cache(driver="needs-missing")
    with pytest.raises(DriverNotFound, match="not a cachekit Driver subclass"):
        Cache(driver="collections:OrderedDict")
