"""Typed return values: a ``@cached`` function's results stored in a form made for its return annotation.

A function annotated ``-> User`` (a dataclass, a Pydantic model, an attrs class, an enum, a ``NamedTuple``, a
``TypedDict``, a msgspec ``Struct``), or ``-> list[User]``, ``dict[str, User]``, ``User | None``,
``Page[User]``, gets a :class:`TypedReturn`: its annotation is read once (at decoration, or at the first call
when it names something not defined yet) and turned into a :class:`Plan`:

* the *engine*: Pydantic's ``TypeAdapter`` when a Pydantic model appears anywhere in the annotation (JSON in,
  ``validate_json`` out), else msgspec (its msgpack, decoded by a ``msgspec.msgpack.Decoder`` of the
  annotation), with Pydantic as the fallback for what msgspec refuses (unions of two dataclasses);
* a *fingerprint*: 8 bytes of BLAKE2b over the annotation's structure (every class's module, name, fields and
  their types, enum members), part of the key and of every stored value. A deploy that changes a model reads
  keys of its own (no ping-pong with the old deploy during a rolling restart), and a value stored for another
  schema is a clean miss, never a wrong object.

A store encodes the value, decodes it again and keeps it only if that gives an object ``==`` to the source's,
of the same class (else one warning, and the value is returned uncached): so a hit gives what the source
gave. The stored form is a :class:`~cachekit.codecs._typed_blob.TypedBlob` inside the namespace's usual
envelope (checksum or signature, deadline, compression, size cap). An annotation naming anything else (a plain
class, a Django model, a SQLAlchemy mapped class) is refused once, with a warning naming the function, the type
and the fix. ``None`` is stored as plain ``None``; object stores (``store="objects"``) and the ``pickle``
serializer keep values as they are.

msgspec, Pydantic and attrs are imported only when an annotation needs them.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as _dt
import enum
import functools
import hashlib
import sys
import threading
import types
import typing
import uuid
import warnings
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from ._types import MISSING
from .codecs import MsgpackSerializer
from .codecs._copies import _SHARED, MAX_NODES
from .codecs._typed_blob import TypedBlob
from .errors import CorruptEntryError, UncacheableValueWarning

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["Plan", "TypedReturn", "plan_for", "typed_return"]

_PLAIN_LEAVES: Final = frozenset(
    {str, int, float, bool, bytes, bytearray, type(None), _dt.datetime, _dt.date, _dt.time, _dt.timedelta,
     Decimal, uuid.UUID}
)  # fmt: skip
_CONTAINERS: Final = frozenset(
    {list, tuple, dict, set, frozenset, collections.abc.Sequence, collections.abc.Mapping,
     collections.abc.MutableSequence, collections.abc.MutableMapping, collections.abc.Set,
     collections.abc.MutableSet, typing.Union, types.UnionType, typing.Literal}
)  # fmt: skip
_UNRESOLVED = object()
_SEEN, _NO_COPY = object(), object()  # TypedBlob.kept: seen by one hit; holds nothing a copy can be made of
_FIX = (
    "return a dataclass, a Pydantic model, an attrs class, a msgspec Struct or plain data (dict/list/...), "
    "or use store='objects' on the memory driver"
)


class Refusal:
    """Why an annotation cannot be stored; warned about once per function."""

    __slots__ = ("message", "warned")

    def __init__(self, message: str) -> None:
        self.message, self.warned = message, False


Form = tuple[Callable[[Any], bytes], Callable[[bytes], Any]]  # (encode, decode) of one stored form


class Plan:
    """How values of one annotation become bytes and back (see the module docstring).

    An engine may have more than one *form* (Pydantic: JSON, else msgpack of the Python-mode dump); each form
    has a fingerprint of its own, so a hit finds its decoder with one dict lookup and no tag to slice off.
    """

    __slots__ = ("annotation", "decoders", "engine", "fingerprint", "forms")

    def __init__(self, annotation: Any, engine: str, fingerprint: bytes, forms: list[Form]) -> None:
        self.annotation, self.engine, self.fingerprint = annotation, engine, fingerprint  # the key's: form 0's
        self.forms = [(_form_fingerprint(fingerprint, i), encode, decode) for i, (encode, decode) in enumerate(forms)]
        self.decoders: dict[bytes, Callable[[bytes], Any]] = {fp: decode for fp, _, decode in self.forms}

    def box(self, value: Any) -> TypedBlob:
        """``value`` in the first form that gives it back equal; :class:`_Unstorable` when none does."""
        reason = ""
        for fingerprint, encode, decode in self.forms:
            try:
                payload = encode(value)
                again = decode(payload)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                continue
            if type(again) is type(value) and again == value:
                return TypedBlob(fingerprint, payload, value)
            reason = f"it decodes as {again!r:.120} (not equal)"
        raise _Unstorable(value, reason)


def _form_fingerprint(fingerprint: bytes, index: int) -> bytes:
    return fingerprint if index == 0 else hashlib.blake2b(fingerprint + bytes([index]), digest_size=8).digest()


class _Unstorable(Exception):
    """A loaded value that the plan cannot give back equal: returned to the caller, never stored."""

    def __init__(self, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.value, self.reason = value, reason


# -- reading an annotation --------------------------------------------------------------------------------------


class _Walk:
    """What a walk over an annotation found."""

    def __init__(self) -> None:
        self.schema = False  # a class that needs the typed form (dataclass, model, enum...)
        self.pydantic = False
        self.refused: list[str] = []
        self.seen: set[int] = set()


def _module(name: str) -> Any:
    return sys.modules.get(name)


def _is_pydantic(cls: type) -> bool:
    pydantic = _module("pydantic")
    return pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)


def _is_struct(cls: type) -> bool:
    msgspec = _module("msgspec")
    return msgspec is not None and isinstance(cls, type) and issubclass(cls, msgspec.Struct)


def _name(tp: Any) -> str:
    return f"{getattr(tp, '__module__', '?')}.{getattr(tp, '__qualname__', repr(tp))}"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # NameError: a forward reference not defined yet (the caller retries)


def _fields(cls: type) -> list[tuple[str, Any, bool]]:
    """(name, type, has a default) of a class's fields, for the fingerprint and the walk."""
    if dataclasses.is_dataclass(cls):
        hints = _hints(cls)
        return [
            (f.name, hints.get(f.name, f.type),
             f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)
            for f in dataclasses.fields(cls)
        ]  # fmt: skip
    if hasattr(cls, "__attrs_attrs__"):
        hints = _hints(cls)
        nothing = _module("attrs").NOTHING if _module("attrs") else None
        return [(a.name, hints.get(a.name, a.type), a.default is not nothing) for a in cls.__attrs_attrs__]
    if _is_pydantic(cls):
        fields: dict[str, Any] = cls.model_fields  # type: ignore[attr-defined]
        return [(name, f.annotation, not f.is_required()) for name, f in fields.items()]
    if _is_struct(cls):
        import msgspec

        hints = _hints(cls)
        return [
            (f.name, hints.get(f.name, f.type), f.default is not msgspec.NODEFAULT
             or f.default_factory is not msgspec.NODEFAULT)
            for f in msgspec.structs.fields(cls)
        ]  # fmt: skip
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):  # NamedTuple
        hints = _hints(cls)
        defaults = getattr(cls, "_field_defaults", {})
        return [(name, hints.get(name, Any), name in defaults) for name in cls._fields]
    if typing.is_typeddict(cls):
        required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
        return [(name, tp, name not in required) for name, tp in _hints(cls).items()]
    return []


def _refusal(cls: type) -> str:
    mro = [_name(base) for base in getattr(cls, "__mro__", ())]
    if any(name.startswith("django.db.models") for name in mro):
        return (f"{_name(cls)} is a Django model: an instance is bound to a database row and its state; return "
                "a dataclass or a dict of its fields (e.g. model_to_dict), or a Pydantic model of it")  # fmt: skip
    if hasattr(cls, "__mapper__") or hasattr(cls, "_sa_class_manager"):
        return (f"{_name(cls)} is a SQLAlchemy mapped class: an instance is bound to its session; return a "
                "dataclass, a Pydantic model (from_attributes=True) or a dict of its columns")  # fmt: skip
    return f"{_name(cls)} has no schema cachekit can store without pickle: {_FIX}"


def _walk(tp: Any, walk: _Walk) -> str:
    """A canonical description of ``tp`` (for the fingerprint); records what it found in ``walk``."""
    if tp is None or tp is type(None):
        return "None"
    if tp is Any or tp is object:
        return "Any"
    if isinstance(tp, typing.TypeVar):
        return f"~{tp.__name__}"
    if isinstance(tp, (str, typing.ForwardRef)):
        raise NameError(f"the forward reference {tp!r} is not resolved")
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _walk(typing.get_args(tp)[0], walk)
    if origin is typing.Literal:
        return f"Literal{typing.get_args(tp)!r}"
    if origin is not None:
        args = ",".join(_walk(arg, walk) if arg is not Ellipsis else "..." for arg in typing.get_args(tp))
        head = "Union" if origin in (typing.Union, types.UnionType) else _walk(origin, walk)
        return f"{head}[{args}]"
    if not isinstance(tp, type):
        walk.refused.append(f"{tp!r} is not a type cachekit can store: {_FIX}")
        return repr(tp)
    if tp in _PLAIN_LEAVES or tp in _CONTAINERS:
        return tp.__qualname__
    name = _name(tp)
    if id(tp) in walk.seen:
        return name
    walk.seen.add(id(tp))
    if issubclass(tp, enum.Enum):
        walk.schema = True
        return f"{name}{{{','.join(f'{m.name}={m.value!r}' for m in tp)}}}"
    if _is_pydantic(tp):
        walk.schema = walk.pydantic = True
    elif (dataclasses.is_dataclass(tp) or hasattr(tp, "__attrs_attrs__") or _is_struct(tp)
          or typing.is_typeddict(tp) or (issubclass(tp, tuple) and hasattr(tp, "_fields"))):  # fmt: skip
        walk.schema = True
    else:
        walk.refused.append(_refusal(tp))
        return name
    fields = ",".join(f"{fname}:{_walk(ftype, walk)}{'=' if default else ''}" for fname, ftype, default in _fields(tp))
    return f"{name}({fields})"


def plan_for(annotation: Any) -> Plan | Refusal | None:
    """The plan of a return annotation: ``None`` when plain data (the namespace's codec stores it as it is).

    :raises NameError: the annotation names something not defined yet (try again at the first call).
    """
    walk = _Walk()
    description = _walk(annotation, walk)
    if walk.refused:
        return Refusal(walk.refused[0])
    if not walk.schema:
        return None
    engines = ("pydantic",) if walk.pydantic else ("msgspec", "pydantic")
    errors = []
    for engine in engines:
        try:
            forms = _ENGINES[engine](annotation)
        except ImportError as exc:
            errors.append(f"{engine} is not installed ({exc}); pip install 'cachekit-orm[typed]'")
            continue
        except Exception as exc:
            errors.append(f"{engine}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        fingerprint = hashlib.blake2b(f"{engine}|{description}".encode(), digest_size=8).digest()
        return Plan(annotation, engine, fingerprint, forms)
    return Refusal(f"{_describe(annotation)} cannot be stored ({'; '.join(errors)}): {_FIX}")


def _msgspec_engine(annotation: Any) -> list[Form]:
    import msgspec

    return [(msgspec.msgpack.encode, msgspec.msgpack.Decoder(annotation).decode)]


def _pydantic_engine(annotation: Any) -> list[Form]:
    """Pydantic's JSON (``dump_json`` / ``validate_json``, one pass in Rust each way); for a value whose JSON does
    not come back equal (bytes that are not UTF-8, infinities), msgpack of its Python-mode dump."""
    import msgspec
    import pydantic
    import pydantic_core

    adapter = pydantic.TypeAdapter(annotation)
    validator = adapter.validator
    validate_json: Callable[..., Any]
    validate_python: Callable[..., Any]
    if isinstance(validator, pydantic_core.SchemaValidator):  # the validator itself: no Python frame per hit
        validate_json, validate_python = validator.validate_json, validator.validate_python
    else:
        validate_json, validate_python = adapter.validate_json, adapter.validate_python
    unpack = msgspec.msgpack.decode

    def to_json(value: Any) -> bytes:
        return adapter.dump_json(value, round_trip=True, warnings="error")

    def to_msgpack(value: Any) -> bytes:
        return msgspec.msgpack.encode(adapter.dump_python(value, round_trip=True, warnings="error"))

    def from_msgpack(payload: bytes) -> Any:
        return validate_python(unpack(payload))

    return [(to_json, validate_json), (to_msgpack, from_msgpack)]


_ENGINES: dict[str, Callable[[Any], list[Form]]] = {
    "msgspec": _msgspec_engine,
    "pydantic": _pydantic_engine,
}


def model_copier(value: Any) -> Callable[[Any], Any] | None:
    """A copier of a decoded Pydantic value (models, dict/list/tuple/set, immutable leaves, enum members), or
    ``None`` when it holds anything else (then every hit decodes).

    Pydantic re-validates on ``validate_json`` (17,100 instructions for a 10-field model); a copy that rebuilds
    each model as ``BaseModel.__copy__`` does (``__dict__``, fields set; no extra, no private attributes) and
    each mutable container costs a fraction, gives every caller its own objects, and runs no validator again.
    """
    try:
        plan = _copy_plan(value, [MAX_NODES], 0, set())
    except _NoCopy:
        return None
    return plan if plan is not None else _itself


class _NoCopy(Exception):
    pass


def _itself(value: Any) -> Any:
    return value


_setattr, _new = object.__setattr__, object.__new__


def _copy_plan(value: Any, budget: list[int], depth: int, seen: set[int]) -> Callable[[Any], Any] | None:
    budget[0] -= 1
    if budget[0] < 0 or depth > 32:
        raise _NoCopy
    kind = type(value)
    if kind in _SHARED or isinstance(value, enum.Enum):
        return None
    if id(value) in seen:
        raise _NoCopy  # one object in two places: copies would split it
    seen.add(id(value))
    if _is_pydantic(kind):
        if getattr(value, "__pydantic_extra__", None) is not None or getattr(value, "__pydantic_private__", None):
            raise _NoCopy
        inner = tuple((name, plan) for name, field in value.__dict__.items()
                      if (plan := _copy_plan(field, budget, depth + 1, seen)) is not None)  # fmt: skip
        return functools.partial(_copy_model, kind, inner)
    base = _copier_for_container(kind)
    if base is None:
        raise _NoCopy
    if kind is dict:
        inner = tuple((k, p) for k, v in value.items() if (p := _copy_plan(v, budget, depth + 1, seen)) is not None)
        return functools.partial(_copy_dict, inner) if inner else dict.copy
    plans = tuple(_copy_plan(item, budget, depth + 1, seen) for item in value)
    if kind is set or kind is frozenset:
        if any(plans):
            raise _NoCopy
        return set.copy if kind is set else None
    if not any(plans):
        return list.copy if kind is list else None
    return functools.partial(_copy_sequence, kind, plans)


def _copier_for_container(kind: type) -> type | None:
    return kind if kind in (dict, list, tuple, set, frozenset) else None


def _copy_model(cls: type, inner: tuple[tuple[str, Callable[[Any], Any]], ...], model: Any) -> Any:
    new: Any = _new(cls)
    fields = model.__dict__.copy()
    for name, plan in inner:
        fields[name] = plan(fields[name])
    _setattr(new, "__dict__", fields)
    _setattr(new, "__pydantic_fields_set__", set(model.__pydantic_fields_set__))
    _setattr(new, "__pydantic_extra__", None)
    _setattr(new, "__pydantic_private__", None)
    return new


def _copy_dict(inner: tuple[tuple[Any, Callable[[Any], Any]], ...], value: dict[Any, Any]) -> dict[Any, Any]:
    copy = value.copy()
    for key, plan in inner:
        copy[key] = plan(value[key])
    return copy


def _copy_sequence(kind: type, plans: tuple[Callable[[Any], Any] | None, ...], value: Any) -> Any:
    items = [item if plan is None else plan(item) for item, plan in zip(value, plans, strict=True)]
    return items if kind is list else kind(items)


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__qualname__", None) or repr(annotation)


# -- per function -----------------------------------------------------------------------------------------------


def _return_annotation(fn: Any) -> Any:
    """The evaluated return annotation of ``fn`` (``MISSING`` when it has none).

    :raises NameError: it names something not defined yet.
    """
    target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    raw = getattr(target, "__annotations__", {})
    if "return" not in raw:
        return MISSING
    return typing.get_type_hints(target, include_extras=True).get("return", MISSING)


def typed_return(fn: Any, what: str) -> TypedReturn | None:
    """The :class:`TypedReturn` of a decorated function, or ``None`` when its results are plain data.

    Decided at decoration when the annotation can be evaluated; else at the first call.
    """
    try:
        annotation = _return_annotation(fn)
    except NameError:
        return TypedReturn(fn, what)  # resolved at the first call
    except Exception:
        return None  # an annotation typing cannot evaluate: plain data, as before
    if annotation is MISSING:
        return None
    try:
        plan = plan_for(annotation)
    except NameError:
        return TypedReturn(fn, what)
    if plan is None:
        return None
    typed = TypedReturn(fn, what)
    typed._plan = plan
    return typed


class TypedReturn:
    """The typed return of one ``@cached`` function: its hit and miss paths (see the module docstring)."""

    def __init__(self, fn: Any, what: str) -> None:
        self.fn, self.what = fn, what
        self._plan: Any = _UNRESOLVED
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    @property
    def plan(self) -> Plan | Refusal | None:
        """The plan, resolved at the first call if the annotation could not be read at decoration."""
        plan = self._plan
        if plan is _UNRESOLVED:
            with self._lock:
                if self._plan is _UNRESOLVED:
                    self._plan = self._resolve()
                plan = self._plan
        return plan  # type: ignore[no-any-return]

    def _resolve(self) -> Plan | Refusal | None:
        try:
            annotation = _return_annotation(self.fn)
            return None if annotation is MISSING else plan_for(annotation)
        except Exception as exc:
            self._warn(
                "unresolved",
                f"{self.what}: its return annotation cannot be evaluated ({type(exc).__name__}: {exc}); results "
                "are stored as plain data (define the types it names before the first call)",
            )
            return None

    def key_variant(self) -> str | None:
        """What the key carries of the schema: the fingerprint (``None`` for plain data)."""
        plan = self.plan
        return plan.fingerprint.hex() if type(plan) is Plan else None

    def _warn(self, what: str, message: str) -> None:
        if what not in self._warned:  # once per function and cause, whatever the warning filters say
            self._warned.add(what)
            warnings.warn(message, UncacheableValueWarning, stacklevel=5)

    def _active(self, ns: Cache) -> Plan | Refusal | None:
        """The plan in force in ``ns``: ``None`` where values are kept as they are (objects, pickle)."""
        plan = self.plan
        if plan is None or ns.codec is None:
            return None
        serializer = ns.codec.serializer
        if not isinstance(serializer, MsgpackSerializer):
            if type(serializer).__name__ == "PickleSerializer":
                return None  # pickle stores the object itself (opted in by name)
            if type(plan) is Plan:
                return Refusal(
                    f"typed results need the msgpack serializer (this namespace uses "
                    f"{type(serializer).__name__}); use serializer='msgpack', or return plain data"
                )
        return plan

    # -- hits ---------------------------------------------------------------------------------------------

    def hit(self, ns: Cache, key: str, value: Any) -> Any:
        """The object a hit gives, or MISSING (a clean miss: counted as an error, the entry dropped)."""
        if type(value) is TypedBlob:
            kept = value.kept
            if type(kept) is tuple:
                return kept[0](kept[1])  # a copy of this very blob's decoding (Pydantic models)
            plan = self._plan
            decode = plan.decoders.get(value.fingerprint) if type(plan) is Plan else None
            if decode is not None:
                try:
                    decoded = decode(value.payload)
                except Exception as exc:
                    error = self._undecodable(plan, exc)
                else:
                    if plan.engine != "pydantic" or kept is _NO_COPY:
                        return decoded
                    if kept is None:  # first sight: most blobs (Redis, S3...) are read once; the memory
                        value.kept = _SEEN  # reader hands the same blob to every hit of its entry
                        return decoded
                    copier = model_copier(decoded)
                    if copier is None:
                        value.kept = _NO_COPY
                        return decoded
                    value.kept = (copier, decoded)  # never handed out itself: every hit gets a copy
                    return copier(decoded)
            else:
                error = CorruptEntryError(f"{self.what}: a typed value written for another schema")
        else:
            plain_error = self._plain_error(ns, value)
            if plain_error is None:
                return value
            error = plain_error
        self._refuse_hit(ns, key, error)
        ns._drop(key)
        return MISSING

    async def ahit(self, ns: Cache, key: str, value: Any) -> Any:
        """:meth:`hit` for ``async def`` reads: an unusable entry is dropped through the driver's async twin."""
        decoded, error = self._decoded(ns, value)
        if error is None:
            return decoded
        self._refuse_hit(ns, key, error)
        try:
            await ns.driver.adelete(key)
        except Exception:
            pass  # it expires by itself
        return MISSING

    def _decoded(self, ns: Cache, value: Any) -> tuple[Any, Exception | None]:
        """(the object a stored ``value`` gives, ``None``), or (MISSING, why it gives none)."""
        if type(value) is TypedBlob:
            plan = self._plan
            decode = plan.decoders.get(value.fingerprint) if type(plan) is Plan else None
            if decode is None:
                return MISSING, CorruptEntryError(f"{self.what}: a typed value written for another schema")
            try:
                return decode(value.payload), None
            except Exception as exc:
                return MISSING, self._undecodable(plan, exc)
        error = self._plain_error(ns, value)
        return (value, None) if error is None else (MISSING, error)

    def _undecodable(self, plan: Plan, exc: Exception) -> CorruptEntryError:
        return CorruptEntryError(
            f"{self.what}: the stored value does not decode to {_describe(plan.annotation)}: {str(exc)[:200]}"
        )

    def _plain_error(self, ns: Cache, value: Any) -> CorruptEntryError | None:
        """A hit that is not a typed value: fine where values are kept as they are, and for ``None``."""
        if value is None or type(self._active(ns)) is not Plan:
            return None
        return CorruptEntryError(f"{self.what}: a stored {type(value).__name__} where a typed value was expected")

    @staticmethod
    def _refuse_hit(ns: Cache, key: str, error: Exception) -> None:
        ns.hits -= 1  # the read counted a hit; it is an unusable entry (an error, like a corrupt blob)
        ns._backend_failed(key, error)

    # -- misses -------------------------------------------------------------------------------------------

    def load(self, ns: Cache, key: str, action: str, loader: Callable[[], Any], ttl: Any) -> Any:
        """After a miss: load through the namespace (single-flight, policies) and store the typed form."""
        plan = self._active(ns)
        if plan is None:
            return ns._load(key, action, loader, ttl)
        if not isinstance(plan, Plan):
            self._refused(plan)
            return loader()
        try:
            result = ns._load(key, action, functools.partial(self._boxed, plan, loader), ttl)
        except _Unstorable as exc:
            return exc.value
        return self._unbox(ns, key, result, loader)

    async def aload(self, ns: Cache, key: str, action: str, loader: Callable[[], Awaitable[Any]], ttl: Any) -> Any:
        """The async twin of :meth:`load`."""
        plan = self._active(ns)
        if plan is None:
            return await ns._aload(key, action, loader, ttl)
        if not isinstance(plan, Plan):
            self._refused(plan)
            return await loader()
        try:
            result = await ns._aload(key, action, functools.partial(self._aboxed, plan, loader), ttl)
        except _Unstorable as exc:
            return exc.value
        value = self._unbox(ns, key, result, None)
        return await loader() if value is MISSING else value

    def _refused(self, refusal: Refusal) -> None:
        if not refusal.warned:
            refusal.warned = True
            warnings.warn(f"{self.what} is not cached: {refusal.message}", UncacheableValueWarning, stacklevel=5)

    def _boxed(self, plan: Plan, loader: Callable[[], Any]) -> Any:
        value = loader()
        return None if value is None else self._box(plan, value)

    async def _aboxed(self, plan: Plan, loader: Callable[[], Awaitable[Any]]) -> Any:
        value = await loader()
        return None if value is None else self._box(plan, value)

    def _box(self, plan: Plan, value: Any) -> TypedBlob:
        try:
            return plan.box(value)
        except _Unstorable as exc:
            self._warn(
                f"unstorable:{type(value).__qualname__}",
                f"{self.what} returned a {type(value).__qualname__} that its return annotation "
                f"{_describe(plan.annotation)} does not give back equal ({exc.reason}); returned uncached. Return "
                "exactly the annotated type, or fix the annotation",
            )
            raise

    def _unbox(self, ns: Cache, key: str, result: Any, loader: Callable[[], Any] | None) -> Any:
        if type(result) is TypedBlob and result.value is not MISSING:
            return result.value  # this call's own load (or the flight it waited for)
        decoded, error = self._decoded(ns, result)
        if error is None:
            return decoded
        # Stored by someone else and unusable (the single-flight re-read found it): the source decides.
        return MISSING if loader is None else loader()

    def refresh_value(self, ns: Cache, value: Any) -> Any:
        """What ``.refresh()`` stores for ``value``: its typed form where one is in force."""
        plan = self._active(ns)
        if type(plan) is not Plan or value is None:
            return value
        try:
            return self._box(plan, value)
        except _Unstorable:
            return MISSING
