"""Typed results (issue 17): a hit gives the annotated type back, equal and of the same class, or is a clean miss."""

import dataclasses
import datetime as dt
import enum
import subprocess
import sys
import typing
import uuid
import warnings
from decimal import Decimal
from typing import Generic, NamedTuple, TypedDict, TypeVar

import attrs
import msgspec
import pydantic
import pytest

from cachekit import Cache, cached
from cachekit.codecs._typed_blob import TypedBlob
from cachekit.errors import UncacheableValueWarning
from tests.conftest import same_value

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Address:
    city: str
    zip: str = "00000"


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Region(enum.StrEnum):
    EU = "eu"
    US = "us"


@dataclasses.dataclass
class User:
    id: str
    name: str
    address: Address
    tags: list[str] = dataclasses.field(default_factory=list)
    color: Color = Color.RED
    born: dt.date | None = None
    balance: Decimal = Decimal("0")


@dataclasses.dataclass
class DPage(Generic[T]):
    items: list[T]
    total: int


class PAddress(pydantic.BaseModel):
    city: str


class PUser(pydantic.BaseModel):
    id: str
    name: str
    address: PAddress
    level: Level = Level.LOW
    seen: dt.datetime | None = None
    key: uuid.UUID | None = None

    @pydantic.field_validator("name")
    @classmethod
    def strip(cls, name: str) -> str:
        return name.strip()  # idempotent: a hit validates the stored name again and keeps it


class Page(pydantic.BaseModel, Generic[T]):
    items: list[T]
    total: int


@attrs.define
class AUser:
    id: str
    region: Region = Region.EU


class Point(NamedTuple):
    x: int
    y: int = 0


class Movie(TypedDict):
    title: str
    year: int


class SUser(msgspec.Struct):
    id: str
    score: float = 0.0


class Plain:  # no schema: refused
    def __init__(self, id: str) -> None:
        self.id = id


def user(id: str = "u1") -> User:
    return User(id, "Ann", Address("Paris"), ["a"], Color.BLUE, dt.date(1990, 5, 1), Decimal("1.50"))


def puser(id: str = "u1") -> PUser:
    return PUser(id=id, name="Ann", address=PAddress(city="Oslo"), level=Level.HIGH,
                 seen=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc), key=uuid.UUID(int=7))  # fmt: skip


SOURCES: dict[str, tuple[object, typing.Callable[[], object]]] = {
    "dataclass": (User, user),
    "dataclass-optional": (User | None, user),
    "none-for-optional": (User | None, lambda: None),
    "list-of-dataclass": (list[User], lambda: [user("a"), user("b")]),
    "dict-of-dataclass": (dict[str, User], lambda: {"a": user("a")}),
    "tuple-of-dataclass": (tuple[User, ...], lambda: (user("a"), user("b"))),
    "generic-dataclass": (DPage[User], lambda: DPage([user()], 1)),
    "pydantic": (PUser, puser),
    "pydantic-list": (list[PUser], lambda: [puser("a"), puser("b")]),
    "pydantic-generic": (Page[PUser], lambda: Page[PUser](items=[puser()], total=1)),
    "pydantic-optional": (PUser | None, puser),
    "attrs": (AUser, lambda: AUser("a", Region.US)),
    "enum": (Color, lambda: Color.BLUE),
    "intenum": (Level, lambda: Level.HIGH),
    "strenum": (Region, lambda: Region.US),
    "namedtuple": (Point, lambda: Point(1, 2)),
    "typeddict": (Movie, lambda: Movie(title="Heat", year=1995)),
    "struct": (SUser, lambda: SUser("s", 2.5)),
    "frozen-slots": (Address, lambda: Address("Rome", "001")),
}


def repository(annotation: object, make: typing.Callable[[], object], cache: Cache) -> typing.Any:
    class Repo:
        name = "things"

        def __init__(self) -> None:
            self.cache = cache
            self.calls = 0

        def get(self, id: str) -> typing.Any:
            self.calls += 1
            return make()

    Repo.get.__annotations__["return"] = annotation
    Repo.get = cached(action="get")(Repo.get)  # type: ignore[method-assign]
    return Repo()


@pytest.mark.parametrize("case", list(SOURCES))
def test_a_hit_gives_the_annotated_type_equal_and_fresh(case: str) -> None:
    annotation, make = SOURCES[case]
    repo = repository(annotation, make, Cache("memory", namespace="typed"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = repo.get("k")
        second = repo.get("k")
        third = repo.get("k")
    assert repo.calls == 1, "the second and third calls are hits"
    assert same_value(second, make()) or (type(second) is type(make()) and second == make())
    assert type(second) is type(first)
    if second is not None and not isinstance(second, (enum.Enum, tuple, Address)):
        assert second is not third, "every hit gets its own object"


def test_a_hit_is_a_new_object_that_a_caller_may_mutate() -> None:
    repo = repository(User, user, Cache("memory", namespace="typed"))
    repo.get("k")
    mine = repo.get("k")
    mine.tags.append("mutated")
    assert repo.get("k") == user()


def test_pydantic_hits_are_copies_no_caller_can_alter() -> None:
    repo = repository(list[PUser], lambda: [puser("a"), puser("b")], Cache("memory", namespace="typed"))
    for _ in range(3):  # the miss, then a hit that decodes, then one that keeps its decoding: later hits copy it
        repo.get("k")
    first = repo.get("k")
    first[0].address.city = "changed"
    first[0].name = "changed"
    first.append(puser("c"))
    for _ in range(2):
        again = repo.get("k")
        assert again == [puser("a"), puser("b")]
        assert again[0] is not first[0]
        assert again[0].address is not first[0].address
        assert again[0].model_fields_set == puser("a").model_fields_set
    assert repo.calls == 1


def test_objects_mode_keeps_the_live_object() -> None:
    made = user()
    repo = repository(User, lambda: made, Cache("memory", namespace="typed", config={"store": "objects"}))
    assert repo.get("k") is made
    assert repo.get("k") is made
    assert repo.calls == 1


def test_signed_and_compressed_namespaces_store_typed_values() -> None:
    cache = Cache("memory", namespace="typed", config={"signing_key": b"k" * 32, "enable_compression": True,
                                                       "compression_threshold": 1})  # fmt: skip
    repo = repository(list[User], lambda: [user(str(i)) for i in range(20)], cache)
    assert repo.get("k") == repo.get("k")
    assert repo.calls == 1


def test_the_stored_form_is_a_typed_blob_inside_the_envelope() -> None:
    cache = Cache("memory", namespace="typed")
    repo = repository(User, user, cache)
    repo.get("k")
    stored = cache.get(repo.get.cache_key("k"))
    assert type(stored) is TypedBlob
    assert len(stored.fingerprint) == 8


def test_forward_references_are_resolved_at_the_first_call() -> None:
    cache = Cache("memory", namespace="typed")

    class Repo:
        name = "later"

        def __init__(self) -> None:
            self.cache, self.calls = cache, 0

        @cached(action="get")
        def get(self, id: str) -> "LaterUser":
            self.calls += 1
            return LaterUser(id)

    repo = Repo()
    assert repo.get("a") == LaterUser("a")
    assert type(repo.get("a")) is LaterUser
    assert repo.calls == 1


@dataclasses.dataclass
class LaterUser:
    id: str


def test_a_type_without_schema_is_refused_once_naming_function_type_and_fix() -> None:
    repo = repository(Plain, lambda: Plain("a"), Cache("memory", namespace="typed"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [repo.get("k") for _ in range(5)]
    messages = [str(w.message) for w in caught if issubclass(w.category, UncacheableValueWarning)]
    assert len(messages) == 1
    assert "get()" in messages[0]
    assert "Plain" in messages[0]
    assert "dataclass" in messages[0]
    assert repo.calls == 5
    assert all(type(r) is Plain for r in results)


def test_a_sqlalchemy_mapped_class_is_refused_with_its_own_fix() -> None:
    sqlalchemy_orm = pytest.importorskip("sqlalchemy.orm")

    class Base(sqlalchemy_orm.DeclarativeBase):
        pass

    class Row(Base):
        __tablename__ = "rows"
        id: sqlalchemy_orm.Mapped[int] = sqlalchemy_orm.mapped_column(primary_key=True)

    repo = repository(Row, lambda: Row(id=1), Cache("memory", namespace="typed"))
    with pytest.warns(UncacheableValueWarning, match="SQLAlchemy mapped class"):
        repo.get("k")


def test_a_value_that_does_not_match_its_annotation_is_returned_uncached_with_one_warning() -> None:
    @dataclasses.dataclass
    class Admin(User):
        level: int = 9

    repo = repository(User, lambda: Admin("a", "Ann", Address("x")), Cache("memory", namespace="typed"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [repo.get("k") for _ in range(3)]
    assert [type(r) for r in results] == [Admin] * 3
    assert repo.calls == 3
    assert len([w for w in caught if issubclass(w.category, UncacheableValueWarning)]) == 1


def test_pickle_namespaces_store_the_object_as_before() -> None:
    with pytest.warns(Warning, match="pickle"):
        cache = Cache("memory", namespace="typed", config={"serializer": "pickle"})
    repo = repository(User, user, cache)
    assert repo.get("k") == repo.get("k") == user()
    assert repo.calls == 1


def test_import_cachekit_does_not_import_the_typed_libraries() -> None:
    code = (
        "import sys, cachekit; from cachekit import cached, Cache\n"
        "@cached(namespace=Cache(), resource='r')\n"
        "def f(x: int) -> dict: return {}\n"
        "f(1)\n"
        "print(sorted(m for m in ('msgspec', 'pydantic', 'attrs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- schema evolution: two definitions of one class --------------------------------------------------------------


def _two_versions(v1: dict[str, typing.Any], v2: dict[str, typing.Any]) -> tuple[type, type]:
    """Two dataclasses both named ``Evolving`` in this module (as two deploys would define it)."""

    def build(fields: dict[str, typing.Any]) -> type:
        spec = [(name, *kind) if isinstance(kind, tuple) else (name, kind) for name, kind in fields.items()]
        cls = dataclasses.make_dataclass("Evolving", spec)
        cls.__module__, cls.__qualname__ = __name__, "Evolving"
        return cls

    return build(v1), build(v2)


EVOLUTIONS = {
    "field added with a default": ({"id": str}, {"id": str, "email": (str, dataclasses.field(default=""))}),
    "field removed": ({"id": str, "email": str}, {"id": str}),
    "type changed": ({"id": str, "age": int}, {"id": str, "age": str}),
}


@pytest.mark.parametrize("change", list(EVOLUTIONS))
def test_a_value_stored_by_another_version_of_the_class_is_a_clean_miss(change: str) -> None:
    old, new = _two_versions(*EVOLUTIONS[change])
    cache = Cache("memory", namespace="typed")
    old_values = {"id": "a", "email": "a@x", "age": 3}
    new_values = {"id": "a", "email": "new@x", "age": "three"}
    before = repository(old, lambda: old(**{f.name: old_values[f.name] for f in dataclasses.fields(old)}), cache)
    after = repository(new, lambda: new(**{f.name: new_values[f.name] for f in dataclasses.fields(new)}), cache)
    before.get("k")
    # The key carries the schema: the new class reads keys of its own, never the old deploy's entries.
    assert before.get.cache_key("k") != after.get.cache_key("k")
    got = after.get("k")
    assert type(got) is new
    assert after.calls == 1
    # Even the old blob copied under the new key (a shared cache written by the old deploy) is a clean miss.
    raw = cache.driver.get(before.get.cache_key("k"))
    cache.driver.set(after.get.cache_key("k"), raw, 60)
    errors = cache.stats().errors
    got = after.get("k")
    assert type(got) is new
    assert after.calls == 2
    assert cache.stats().errors == errors + 1
    assert after.get("k") == got, "the fresh value was stored again"
    assert after.calls == 2


def test_a_planted_value_of_the_wrong_shape_is_a_clean_miss() -> None:
    cache = Cache("memory", namespace="typed")
    repo = repository(User, user, cache)
    key = repo.get.cache_key("k")
    assert cache.codec is not None

    def plant(value: object) -> None:  # as another writer of the store would: past Cache.set's key check
        cache.driver.set(key, cache.codec.encode(value, 60, key), 60)  # type: ignore[union-attr]

    for planted in ({"id": "x"}, [1, 2], "text"):
        plant(planted)
        assert repo.get("k") == user()
    fingerprint = cache.get(key).fingerprint
    plant(TypedBlob(fingerprint, msgspec.msgpack.encode({"id": 1})))
    calls = repo.calls
    assert repo.get("k") == user()
    assert repo.calls == calls + 1
    assert cache.stats().errors == 4


def test_version_in_a_key_makes_other_versions_unreachable() -> None:
    cache = Cache("memory", namespace="typed")

    def repo_of(version: str | None) -> typing.Any:
        class Repo:
            name = "v"

            def __init__(self) -> None:
                self.cache, self.calls = cache, 0

            @cached(action="get", version=version)
            def get(self, id: str) -> dict[str, str]:
                self.calls += 1
                return {"v": str(version)}

        return Repo()

    one, two, again = repo_of("1"), repo_of("2"), repo_of("1")
    assert one.get("a") == {"v": "1"}
    assert two.get("a") == {"v": "2"}
    assert again.get("a") == {"v": "1"}
    assert again.calls == 0, "a process on version 1 reads version 1's entries"
    assert len({one.get.cache_key("a"), two.get.cache_key("a"), repo_of(None).get.cache_key("a")}) == 3
