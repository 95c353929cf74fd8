"""Cheap checks against API drift: every registered driver implements the whole contract."""

from __future__ import annotations

import inspect

import pytest

from cachekit.drivers import available_drivers, resolve_driver_class
from cachekit.drivers.base import Driver

CONTRACT = [name for name, member in vars(Driver).items() if callable(member) and not name.startswith("_")]


@pytest.mark.parametrize("name", available_drivers())
def test_registered_driver_implements_the_contract(name: str) -> None:
    cls = resolve_driver_class(name)
    assert issubclass(cls, Driver)
    assert not inspect.isabstract(cls), f"{cls.__name__} leaves abstract methods: {cls.__abstractmethods__}"
    for method in CONTRACT:
        ours, theirs = inspect.signature(getattr(Driver, method)), inspect.signature(getattr(cls, method))
        assert list(ours.parameters)[: len(theirs.parameters)] == list(theirs.parameters)[: len(ours.parameters)], (
            f"{cls.__name__}.{method}{theirs} does not match Driver.{method}{ours}"
        )
    assert name in (cls.name, "partition-filesystem")
