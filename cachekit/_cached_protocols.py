"""What type checkers see of ``@cached``: Protocols only, nothing here runs.

At run time ``@cached`` returns a wrapt ``FunctionWrapper`` (see :mod:`cachekit.decorators`). For mypy and
pyright it returns a :class:`CachedMethod`: the decorated callable's exact parameters (a ``ParamSpec``) and return
type, the helpers ``.cache_key``, ``.uncached``, ``.invalidate`` and ``.refresh`` with the same parameters, and a
``__get__`` whose overloads say what a lookup through an instance or a class gives:

- ``repo.get``: the instance is bound, so a :class:`BoundCached` without ``self``;
- ``Repo.get``: unbound, ``self`` stays the first parameter (``Repo.get.cache_key(repo, "u1")``);
- a classmethod (``@cached`` above ``@classmethod``): bound to the class both ways;
- a staticmethod: nothing bound both ways (the first parameter is not of the owner's type).

``skip_cache=`` cannot join a ``ParamSpec`` (PEP 612 forbids extra keyword parameters next to ``P.kwargs``), so
``__call__`` has a second overload that takes it: a call with ``skip_cache=`` is checked for its return type but
not for its other arguments. ``.uncached(...)`` is the fully checked way to read through.

Limits (see docs/architecture.md, "Typing of the decorators"): the first parameter of a decorated plain function
or staticmethod is positional-only for a type checker (``get_user("u1")``, not ``get_user(id="u1")``), and a
staticmethod whose first parameter accepts the owner's instances (``Any``, ``object``) is typed as bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+; typing_extensions is not a run-time dependency

__all__ = ["BoundCached", "CachedDecorator", "CachedMethod"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)
S_contra = TypeVar("S_contra", contravariant=True)
R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


class BoundCached(Protocol[P, R_co]):
    """A ``@cached`` callable with nothing left to bind: ``repo.get``, ``Repo.count`` (a classmethod)."""

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    @overload
    def __call__(self, *args: Any, skip_cache: bool, **kwargs: Any) -> R_co: ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key this call would read and write."""
        ...

    def uncached(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through, neither reading nor writing the cache."""
        ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Invalidate this call's entry in every process (a generation bump); return whether one was here."""
        ...

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through, store the result whatever the policies say, and return it."""
        ...


class CachedMethod(Protocol[S_contra, P, R_co]):
    """A ``@cached`` callable whose first parameter (``self``, ``cls``, or a plain function's first) is ``S``."""

    @overload
    def __call__(self, first: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    @overload
    def __call__(self, *args: Any, skip_cache: bool, **kwargs: Any) -> R_co: ...

    def cache_key(self, first: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key this call would read and write."""
        ...

    def uncached(self, first: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through, neither reading nor writing the cache."""
        ...

    def invalidate(self, first: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Invalidate this call's entry in every process (a generation bump); return whether one was here."""
        ...

    def refresh(self, first: S_contra, /, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through, store the result whatever the policies say, and return it."""
        ...

    # The order matters: a classmethod first (its first parameter is the owner class), then a lookup on the
    # class, then on an instance of the first parameter's type, then anything else (a staticmethod).
    @overload
    def __get__(
        self: CachedMethod[type[T], P, R_co], instance: T | None, owner: type[T], /
    ) -> BoundCached[P, R_co]: ...
    @overload
    def __get__(self, instance: None, owner: type[Any], /) -> Self: ...
    @overload
    def __get__(self, instance: S_contra, owner: type[Any], /) -> BoundCached[P, R_co]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any], /) -> Self: ...


class CachedDecorator(Protocol):
    """What ``cached(...)`` returns: takes the function (or classmethod/staticmethod) to cache."""

    @overload
    def __call__(self, fn: Callable[Concatenate[S, P], R], /) -> CachedMethod[S, P, R]: ...
    @overload
    def __call__(self, fn: Callable[[], R], /) -> BoundCached[[], R]: ...
    # mypy only: a method with **kwargs does not match Concatenate (a positional-only first parameter, while
    # its ``self`` could also come by keyword), so it is matched with ``self`` as a named parameter.
    @overload
    def __call__(self, fn: _NamedSelf[S, P, R], /) -> CachedMethod[S, P, R]: ...


class _NamedSelf(Protocol[S_contra, P, R_co]):
    """A method whose ``self`` can be passed by name."""

    def __call__(_this, self: S_contra, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
