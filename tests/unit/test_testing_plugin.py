"""cachekit.testing, the pytest plugin: run in pytester sessions, as a project using it would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def _plugin_args() -> tuple[str, ...]:
    """Once the package is installed, pytest loads the plugin by its entry point; ``-p`` it only before that.

    (pluggy refuses one module registered under two names, so both at once would fail.)
    """
    from importlib.metadata import entry_points

    installed = any(ep.name == "cachekit" for ep in entry_points(group="pytest11"))
    return ("-p", "no:randomly") if installed else ("-p", "cachekit.testing", "-p", "no:randomly")

REPO = '''
from cachekit import Cache, cached, invalidates

cache = Cache(namespace="app")

class Users:
    name = "users"
    cache = cache
    calls = 0

    @cached(action="get")
    def get(self, id):
        Users.calls += 1
        return {"id": id}

    @invalidates(action="update")
    def rename(self, id, name):
        return None

    @invalidates(action="delete_all")
    def wipe(self):
        return None
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(repo=REPO)
    pytester.syspathinsert()
    return pytester


def test_recorder_sees_hits_misses_and_invalidations(project: pytest.Pytester) -> None:
    project.makepyfile(test_users='''
        from repo import Users

        def test_rename_invalidates_only_that_user(cachekit_recorder):
            users = Users()
            users.get("u1"); users.get("u1"); users.get("u2")
            users.rename("u1", "Bea")
            assert len(cachekit_recorder.hits("users", action="get")) == 1
            assert len(cachekit_recorder.misses("users")) == 2
            assert cachekit_recorder.invalidated("users", id="u1")
            assert not cachekit_recorder.invalidated("users", id="u2")
            assert cachekit_recorder.invalidated("users")
            assert not cachekit_recorder.invalidated("orders")

        def test_a_whole_resource_write_invalidates_every_id(cachekit_recorder):
            Users().wipe()
            assert cachekit_recorder.invalidated("users", id="anyone")

        def test_the_recorder_catches_a_missing_invalidation(cachekit_recorder):
            Users().get("u3")
            assert cachekit_recorder.invalidated("users", id="u3"), "no write happened"
    ''')
    result = project.runpytest(*_plugin_args())
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*no write happened*"])


def test_disabled_makes_every_cache_call_through(project: pytest.Pytester) -> None:
    project.makepyfile(test_disabled='''
        from cachekit import Cache
        from repo import Users, cache

        def test_reads_always_call_the_function(cachekit_disabled):
            users = Users()
            for _ in range(3):
                assert users.get("u1") == {"id": "u1"}
            assert Users.calls == 3
            fresh = Cache(namespace="new")
            fresh.set("k", 1)
            assert fresh.get("k", "default") == "default"
            assert cache.get_many([users.get.cache_key("u1")]) == {}

        def test_afterwards_the_cache_works_again():
            Users.calls = 0
            users = Users()
            users.get("u9"); users.get("u9")
            assert Users.calls == 1
    ''')
    result = project.runpytest(*_plugin_args())
    result.assert_outcomes(passed=2)


def test_disabled_also_covers_caches_already_observed(project: pytest.Pytester) -> None:
    project.makepyfile(test_both='''
        from repo import Users

        def test_recorded_and_disabled(cachekit_recorder, cachekit_disabled):
            users = Users()
            users.get("u1"); users.get("u1")
            assert Users.calls == 2
            assert len(cachekit_recorder.misses("users")) == 2
            assert cachekit_recorder.hits() == []
    ''')
    project.runpytest(*_plugin_args()).assert_outcomes(passed=1)


def test_a_project_not_using_the_fixtures_is_untouched(project: pytest.Pytester) -> None:
    project.makepyfile(test_plain='''
        from cachekit import Cache
        from repo import Users, cache

        def test_no_hooks():
            users = Users()
            users.get("u1"); users.get("u1")
            assert Users.calls == 1
            assert cache._read.__module__ != "cachekit._instrument"
            assert "_instrumentation" not in vars(Cache(namespace="x"))
    ''')
    project.runpytest(*_plugin_args()).assert_outcomes(passed=1)
    import cachekit.testing

    hooks = [name for name in vars(cachekit.testing) if name.startswith("pytest_")]
    assert hooks == []


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == {"cachekit": "cachekit.testing"}


def test_recording_outside_pytest() -> None:
    from cachekit import Cache
    from cachekit.testing import recording

    cache = Cache(namespace="outside")
    with recording() as recorder:
        cache.get("k")
        cache.invalidate_resource("things")
    cache.get("k")
    assert [e.kind for e in recorder.events] == ["miss", "invalidate"]
    assert recorder.invalidated("things", id=1)
    assert "miss" in repr(recorder)


def test_a_cache_made_before_disabled_calls_through_inside_it() -> None:
    """A memory cache's reader is its driver's (``Driver.reader``), on the instance: ``disabled()`` must null it
    too, not only the class methods (before issue 18's read hook it served its stored entries inside the block)."""
    from cachekit import Cache, cached
    from cachekit.testing import disabled

    class Repo:
        name = "users"

        def __init__(self, cache: Cache) -> None:
            self.cache, self.loads = cache, 0

        @cached("get")
        def get(self, id: str) -> dict[str, str]:
            self.loads += 1
            return {"id": id}

    for driver in ("memory", "null"):
        repo = Repo(Cache(driver=driver, namespace="made-before"))
        repo.get("u1")
        with disabled():
            repo.get("u1")
        assert repo.loads == 2, driver
        repo.get("u1")
        assert repo.loads == (2 if driver == "memory" else 3), driver  # the reader is back after the block
