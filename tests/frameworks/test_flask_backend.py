"""``cachekit.flask.CachekitCache`` beyond Flask-Caching's suite: untrusted bytes, settings, errors, Redis, the CLI.

Flask-Caching's own tests (``test_flask_caching.py``) judge the contract; these check what only our backend
promises: a blob it did not sign is a miss and is never unpickled, a misconfiguration is one clear error naming
the setting, Redis expiry is native, a dead backend fails open, and the entries are a cachekit namespace.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flask
import flask_caching
import pytest
from cachelib.serializers import JSONSerializer

from cachekit import Cache
from cachekit.codecs import Codec
from cachekit.errors import ConfigurationError, DriverNotFound, UncacheableValueWarning
from cachekit.flask import CachekitCache
from tests.cli.test_cli import cachekit, lines_of

KEY = b"test-flask-backend-signing-key!!"
UNPICKLED: list[str] = []


def _record(what: str) -> str:
    UNPICKLED.append(what)
    return what


class Bomb:
    """Unpickling it calls :func:`_record`: the proof that a blob was unpickled."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_record, (self.what,))


@pytest.fixture(autouse=True)
def _nothing_unpickled_yet() -> None:
    UNPICKLED.clear()


@pytest.fixture
def shared(tmp_path: Path) -> dict[str, Any]:
    """Driver options of a store other processes could write to."""
    return {"driver": "filesystem", "config": {"directory": str(tmp_path / "cache")}}


@pytest.fixture(params=["filesystem", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "filesystem":
        return {"driver": "filesystem", "config": {"directory": str(tmp_path / "cache")}}
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return {"driver": "redis", "config": {"url": url, "key_prefix": prefix}}


def flask_app(**settings: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(CACHE_TYPE="cachekit.flask.CachekitCache", **settings)
    return app


# -- values: pickle only inside envelopes signed with our key ----------------------------------------------------


def planted_blobs() -> dict[str, bytes]:
    """What a writer without our key can put in the store, each holding a pickle that would run code."""
    from cachelib.serializers import SimpleSerializer

    from cachekit.flask import _CachelibSerializer  # the backend's own serializer: these differ only in the key

    bridge = _CachelibSerializer(SimpleSerializer())
    return {
        "raw pickle": pickle.dumps(Bomb("raw pickle")),
        "unsigned envelope": Codec(bridge).encode(Bomb("unsigned envelope"), 60),
        "envelope signed with another key": Codec(bridge, signing_key=b"another-key-0123456789abcdef").encode(
            Bomb("envelope signed with another key"), 60
        ),
    }


def test_a_planted_blob_is_a_miss_and_is_never_unpickled(store: dict[str, Any]) -> None:
    backend = CachekitCache(key_prefix="app:", signing_key=KEY, **store)
    driver = backend.cachekit.driver
    for name, blob in planted_blobs().items():
        driver.set(backend.cachekit.prefix + "app:" + name, blob, 60)
    # the store holds them, under the very keys the backend reads
    assert sorted(backend.cachekit.keys()) == sorted(f"flask/app:{name}" for name in planted_blobs())
    for name in planted_blobs():
        assert backend.get(name) is None
        assert backend.has(name) is False
    assert backend.get_many(*planted_blobs()) == [None, None, None]
    assert UNPICKLED == []
    assert backend.stats().errors >= len(planted_blobs())
    # a blob signed with our key is read: the same pickle, once signed, does run (proof the probe works)
    backend.set("signed", Bomb("signed by us"))
    assert backend.get("signed") == "signed by us"
    assert UNPICKLED == ["signed by us"]
    backend.close()


def test_two_apps_with_one_secret_key_share_entries_and_another_key_reads_nothing(tmp_path: Path) -> None:
    settings = {"CACHE_DIR": str(tmp_path / "cache"), "CACHE_KEY_PREFIX": "shop:"}
    writer = flask_app(SECRET_KEY="the-secret-of-the-shop", **settings)
    reader = flask_app(SECRET_KEY="the-secret-of-the-shop", **settings)
    stranger = flask_app(SECRET_KEY="another-secret", **settings)
    caches = [flask_caching.Cache(app) for app in (writer, reader, stranger)]
    with writer.app_context():
        assert caches[0].set("basket", {"apples": 3, "when": ("today", 1)})
    with reader.app_context():
        assert caches[1].get("basket") == {"apples": 3, "when": ("today", 1)}
    with stranger.app_context():
        assert caches[2].get("basket") is None
        assert caches[2].cache.stats().errors == 1


def test_secret_key_fallbacks_still_read_entries_of_the_old_key(tmp_path: Path) -> None:
    settings = {"CACHE_DIR": str(tmp_path / "cache")}
    old = flask_app(SECRET_KEY="old-secret", **settings)
    rotated = flask_app(SECRET_KEY="new-secret", SECRET_KEY_FALLBACKS=["old-secret"], **settings)
    old_cache, new_cache = flask_caching.Cache(old), flask_caching.Cache(rotated)
    with old.app_context():
        old_cache.set("k", "written under the old key")
    with rotated.app_context():
        assert new_cache.get("k") == "written under the old key"
        new_cache.set("k2", "written under the new key")
    with old.app_context():
        assert old_cache.get("k2") is None  # the old key does not know the new one


def test_a_shared_store_without_a_key_is_refused_and_memory_needs_none(shared: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY") as raised:
        CachekitCache(**shared)
    assert "CACHE_OPTIONS['signing_key']" in str(raised.value)
    app = flask_app(CACHE_DIR=shared["config"]["directory"])
    with pytest.raises(ConfigurationError, match=r"CACHE_TYPE 'cachekit\.flask\.CachekitCache'.*SECRET_KEY"):
        flask_caching.Cache(app)
    # memory only: the blobs never leave the process, a random key per process signs them
    memory = flask_caching.Cache(flask_app())
    with memory.app.app_context():
        assert memory.set("k", Bomb("memory")) is True
        assert memory.get("k") == "memory"
        assert memory.cache.signed is True


def test_msgpack_stores_plain_data_without_a_key(shared: dict[str, Any]) -> None:
    backend = CachekitCache(serializer="msgpack", **shared)
    assert backend.set("k", {"a": [1, 2], "b": ("t",)}) is True
    assert backend.get("k") == {"a": [1, 2], "b": ("t",)}
    with pytest.warns(UncacheableValueWarning):
        assert backend.set("object", Bomb("msgpack")) is False
    assert UNPICKLED == []
    with pytest.raises(ConfigurationError, match="CACHE_SERIALIZER"):
        backend.serializer = JSONSerializer()
    backend.close()


# -- settings and errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "fragments"),
    [
        ({"CACHE_OPTIONS": {"drvier": "memory"}}, ["CACHE_OPTIONS", "'drvier' (did you mean 'driver'?)"]),
        ({"CACHE_OPTIONS": {"driver": "memcache"}}, ["CACHE_OPTIONS", "unknown cache driver 'memcache'"]),
        ({"CACHE_OPTIONS": {"config": {"max_sise": 10}}}, ["CACHE_OPTIONS", "'max_sise' (did you mean 'max_size'?)"]),
        ({"CACHE_OPTIONS": {"config": {"serializer": "pickle"}}}, ["CACHE_OPTIONS", "config has ['serializer']"]),
        ({"CACHE_ARGS": [1]}, ["CACHE_ARGS", "keyword options only"]),
        ({"CACHE_DEFAULT_TIMEOUT": [5]}, ["CACHE_DEFAULT_TIMEOUT"]),
        ({"CACHE_OPTIONS": {"serializer": "yaml"}}, ["CACHE_OPTIONS", "serializer must be"]),
    ],
)
def test_a_bad_setting_is_one_error_naming_it(settings: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        flask_caching.Cache(flask_app(**settings))
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_an_unknown_driver_built_directly_is_driver_not_found() -> None:
    with pytest.raises(DriverNotFound, match="memcache"):
        CachekitCache(driver="memcache")


def test_flask_caching_settings_pick_the_driver(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    def backend_of(**settings: Any) -> CachekitCache:
        app = flask_app(SECRET_KEY="s" * 20, **settings)
        cache = flask_caching.Cache(app)
        with app.app_context():
            return cache.cache  # type: ignore[return-value]

    memory = backend_of(CACHE_THRESHOLD=7, CACHE_KEY_PREFIX="p:")
    assert memory.cachekit.driver.name == "memory"
    assert memory.cachekit.driver.stats()["max_size"] == 7
    assert memory.key_prefix == "p:"
    directory = backend_of(CACHE_DIR=str(tmp_path / "d"))
    assert directory.cachekit.driver.name == "filesystem"
    assert Path(directory.cachekit.driver.directory) == tmp_path / "d"
    remote = backend_of(CACHE_REDIS_URL=redis_url, CACHE_OPTIONS={"config": {"key_prefix": redis_prefix}})
    assert remote.cachekit.driver.name == "redis"
    assert remote.cachekit.driver.key_prefix == redis_prefix
    tiers = {"drivers": [{"driver": "memory", "ttl": 5}, {"driver": "redis", "config": {"key_prefix": redis_prefix}}]}
    tiered = backend_of(CACHE_REDIS_URL=redis_url, CACHE_OPTIONS=tiers)  # the Redis tier takes CACHE_REDIS_URL
    assert [tier.driver.name for tier in tiered.cachekit.driver.tiers] == ["memory", "redis"]
    assert tiered.set("tiered", 1) is True
    assert remote.get("tiered") == 1
    parts = urlsplit(redis_url)
    by_host = backend_of(
        CACHE_REDIS_HOST=parts.hostname, CACHE_REDIS_PORT=parts.port, CACHE_REDIS_DB=int(parts.path.strip("/") or 0),
        CACHE_OPTIONS={"config": {"key_prefix": redis_prefix}},
    )
    assert by_host.set("k", "v") is True
    assert remote.get("k") == "v"  # the same server and database as CACHE_REDIS_URL
    for backend in (memory, directory, remote, tiered, by_host):
        backend.close()


def test_each_app_keeps_its_own_key_prefix(redis_url: str, redis_prefix: str) -> None:
    """Flask-Caching's test_init_app_multi_apps, on our backend: one Cache, two apps, two prefixes."""
    cache = flask_caching.Cache()
    apps = [
        flask_app(SECRET_KEY="s" * 20, CACHE_REDIS_URL=redis_url, CACHE_KEY_PREFIX=name,
                  CACHE_OPTIONS={"config": {"key_prefix": redis_prefix}})
        for name in ("foo", "bar")
    ]
    for app in apps:
        cache.init_app(app)
    for app, prefix in zip(apps, ("foo", "bar"), strict=True):
        with app.app_context():
            assert cache.cache.key_prefix == prefix
            cache.set("k", prefix)
    with apps[0].app_context():
        assert cache.get("k") == "foo"
        assert cache.clear() is True
        assert cache.get("k") is None
    with apps[1].app_context():
        assert cache.get("k") == "bar"  # clear() removed only the keys under its own prefix
        cache.cache.close()
    with apps[0].app_context():
        cache.cache.close()


# -- Redis: native expiry, and failing open ----------------------------------------------------------------------


def test_redis_expiry_is_native_and_timeout_zero_keeps_the_entry(redis_url: str, redis_prefix: str) -> None:
    import redis

    backend = CachekitCache(driver="redis", config={"url": redis_url, "key_prefix": redis_prefix}, signing_key=KEY)
    client = redis.Redis.from_url(redis_url)
    backend.set("short", 1, timeout=5)
    backend.set("forever", 2, timeout=0)
    backend.set("default", 3)
    backend.set("gone", 4, timeout=-1)
    assert 0 < client.pttl(redis_prefix + "flask/short") <= 5000
    assert client.pttl(redis_prefix + "flask/forever") == -1  # no expiry
    assert 295_000 < client.pttl(redis_prefix + "flask/default") <= 300_000
    assert client.exists(redis_prefix + "flask/gone") == 0
    assert backend.get_many("short", "forever", "default", "gone") == [1, 2, 3, None]
    client.close()
    backend.close()


def test_a_dead_redis_fails_open() -> None:
    backend = CachekitCache(
        driver="redis", config={"url": "redis://127.0.0.1:1/0", "connect_timeout": 0.5}, signing_key=KEY
    )
    assert backend.get("k") is None
    assert backend.has("k") is False
    assert backend.get_many("a", "b") == [None, None]
    assert backend.set("k", 1) is False
    assert backend.add("k", 1) is False
    assert backend.delete("k") is False
    assert backend.inc("n") is None
    assert backend.clear() is False
    with pytest.raises(RuntimeError, match="Failed to delete keys"):
        backend.delete_many("a", "b")
    backend.ignore_delete_many_errors = True
    assert backend.delete_many("a", "b") == []
    assert backend.stats().errors > 0
    backend.close()


def test_a_dead_redis_stops_the_app_at_start_unless_told(redis_url: str) -> None:
    dead = {"SECRET_KEY": "s" * 20, "CACHE_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}
    with pytest.raises(ConfigurationError, match="cannot reach the 'redis' cache backend") as raised:
        flask_caching.Cache(flask_app(**dead))
    assert "hunter2" not in str(raised.value)
    assert "check_on_start" in str(raised.value)
    app = flask_app(**dead, CACHE_OPTIONS={"check_on_start": False, "config": {"connect_timeout": 0.5}})
    cache = flask_caching.Cache(app)
    calls: list[int] = []

    @app.route("/")
    @cache.cached()
    def view() -> str:
        calls.append(1)
        return "fresh"

    client = app.test_client()
    assert [client.get("/").data for _ in range(2)] == [b"fresh", b"fresh"]  # served, uncached
    assert len(calls) == 2
    with app.app_context():
        cache.cache.close()


# -- a cachekit namespace ----------------------------------------------------------------------------------------


@pytest.mark.slow  # two CLI processes: about 2 s
def test_entries_are_a_cachekit_namespace_seen_by_the_cli(tmp_path: Path) -> None:
    config = {"directory": str(tmp_path / "cache")}
    backend = CachekitCache(key_prefix="v1:", driver="filesystem", config=config, signing_key=KEY)
    backend.set_many({"a": 1, "b": [2]})
    fs = ("--driver", "filesystem", "--config", json.dumps(config))
    assert lines_of(cachekit("keys", *fs, "--namespace", "flask")) == ["flask/v1:a", "flask/v1:b"]
    stats = json.loads(cachekit("stats", *fs, "--namespace", "flask", "--json").stdout)
    assert (stats["namespace"], stats["keys_under_prefix"]) == ("flask", 2)
    with Cache(driver="filesystem", namespace="flask", config=config) as plain:
        assert sorted(plain.keys()) == ["flask/v1:a", "flask/v1:b"]
    backend.close()


def test_import_cachekit_does_not_import_flask() -> None:
    code = "import sys, cachekit; print([m for m in ('flask', 'flask_caching', 'cachelib') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_keys_are_strings_and_add_keeps_the_first_value() -> None:
    backend = CachekitCache(driver="memory")
    with pytest.raises(TypeError, match="cache keys are strings"):
        backend.get(1)  # type: ignore[arg-type]
    assert backend.add("k", "first") is True
    assert backend.add("k", "second") is False
    assert backend.get("k") == "first"
    assert backend.inc("n", 5) == 5
    assert backend.dec("n", 2) == 3
    assert backend.get_dict("k", "n", "none") == {"k": "first", "n": 3, "none": None}


# -- add/inc/dec across processes --------------------------------------------------------------------------------


@pytest.mark.parametrize("tiers", [False, True], ids=["redis", "memory+redis"])
def test_inc_and_add_are_atomic_across_processes(tiers: bool, redis_url: str, redis_prefix: str) -> None:
    """Two backends on one Redis stand for two processes (each has its own process lock and memory tier)."""
    redis_config = {"url": redis_url, "key_prefix": redis_prefix}
    where: dict[str, Any] = (
        {"drivers": [{"driver": "memory", "ttl": 60}, {"driver": "redis", "config": redis_config}]}
        if tiers else {"driver": "redis", "config": redis_config}
    )
    backends = [CachekitCache(signing_key=KEY, **where) for _ in range(2)]
    for backend in backends:
        assert backend.get("n") is None  # each memory tier has now seen the counter missing...
    backends[0].set("n", 0)
    for backend in backends:
        assert backend.get("n") == 0  # ...and then 0: a stale copy, once the other process counts
    rounds, workers = 25, [backend for backend in backends for _ in range(2)]

    def count(backend: CachekitCache) -> None:
        for _ in range(rounds):
            assert backend.inc("n") is not None
            assert backend.dec("n", 2) is not None
            assert backend.inc("n", 2) is not None

    def claim(backend: CachekitCache, who: int) -> bool:
        return backend.add("claimed", who)

    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(count, workers))
        claims = list(pool.map(claim, workers, range(len(workers))))
    assert backends[0]._read_shared(backends[0].cachekit.driver, "n") == rounds * len(workers)
    assert claims.count(True) == 1
    assert backends[1].get("claimed") == claims.index(True)
    for backend in backends:
        backend.close()
