"""``@cached(ignore=...)`` and the one warning for an argument that cannot be keyed (issue 17)."""

import asyncio
import warnings

import pytest

from cachekit import Cache, cached
from cachekit.errors import ConfigurationError, UncacheableValueWarning


class Session:  # stands for an AsyncSession / Request: no __cache_key__, cannot be hashed into a key
    pass


def make_repo(**options: object) -> object:
    cache = Cache("memory", namespace="ignore")

    class Repo:
        name = "users"

        def __init__(self) -> None:
            self.cache, self.calls = cache, 0

        @cached(action="query", **options)  # type: ignore[arg-type]
        def query(self, session: object, region: str, *, request: object = None) -> list[str]:
            self.calls += 1
            return [region]

    return Repo()


def test_ignored_parameters_are_left_out_of_the_key() -> None:
    repo = make_repo(ignore=("session", "request"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert repo.query(Session(), "eu") == ["eu"]
        assert repo.query(Session(), "eu", request=Session()) == ["eu"]
        assert repo.query(session=Session(), region="eu") == ["eu"]
        assert repo.query(Session(), "us") == ["us"]
    assert repo.calls == 2
    assert repo.query.cache_key(Session(), "eu") == repo.query.cache_key(None, "eu")


def test_an_ignored_name_that_is_not_a_parameter_is_refused_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match="'sesion' is not one of its parameters"):
        make_repo(ignore=("sesion",))
    with pytest.raises(ConfigurationError, match="tuple of parameter names"):
        make_repo(ignore="session")


def test_an_unkeyable_argument_warns_once_naming_it_and_ignore() -> None:
    repo = make_repo()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            assert repo.query(Session(), "eu") == ["eu"]
    messages = [str(w.message) for w in caught if issubclass(w.category, UncacheableValueWarning)]
    assert len(messages) == 1, messages
    assert "'session'" in messages[0]
    assert "ignore=('session',)" in messages[0]
    assert repo.calls == 5


def test_ignore_on_an_async_function() -> None:
    cache = Cache("memory", namespace="ignore-async")
    calls = []

    @cached(namespace=cache, resource="users", action="query", ignore=("session",))
    async def query(session: object, region: str) -> list[str]:
        calls.append(region)
        return [region]

    async def main() -> None:
        assert await query(Session(), "eu") == ["eu"]
        assert await query(Session(), "eu") == ["eu"]

    asyncio.run(main())
    assert calls == ["eu"]


def test_an_unkeyable_argument_of_an_async_read_warns_once_too() -> None:
    """The async key path refuses unkeyable calls as the sync one does: one warning per parameter, not per call."""
    cache = Cache("memory", namespace="unkeyable-async")
    calls = []

    @cached(namespace=cache, resource="users", action="query")
    async def query(session: object, region: str) -> list[str]:
        calls.append(region)
        return [region]

    async def main() -> None:
        for _ in range(5):
            assert await query(Session(), "eu") == ["eu"]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
    messages = [str(w.message) for w in caught if issubclass(w.category, UncacheableValueWarning)]
    assert len(messages) == 1, messages
    assert "ignore=('session',)" in messages[0]
    assert len(calls) == 5
