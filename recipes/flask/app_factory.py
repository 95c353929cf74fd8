"""A Flask application factory that configures cachekit from ``app.config``.

Problem: a Flask API reads the same rows on every request; you want those reads cached, writes to clear what
they change, a different cache backend per environment without code changes, and a way to see whether the
cache is working.

Solution: the factory builds one :class:`cachekit.Cache` from ``CACHEKIT_*`` settings and keeps it in
``app.extensions["cachekit"]``; each request wraps its SQLite connection in an ``ItemRepository`` whose reads
are cached and whose writes invalidate. ``GET /cache/stats`` shows the counters.

Settings (defaults in :data:`DEFAULTS`; override them with ``create_app({...})`` or, in production, with
environment variables, which Flask parses as JSON)::

    CACHEKIT_DRIVER     "memory" | "redis" | "filesystem" | "null" (caching off)
    CACHEKIT_CONFIG     the driver's options, e.g. {"url": "redis://cache:6379/0", "key_prefix": "items:"}
    CACHEKIT_TTL        seconds an entry lives (None: until invalidated)
    CACHEKIT_NAMESPACE  the first segment of every key
    DATABASE            path of the SQLite file

    FLASK_CACHEKIT_DRIVER=redis FLASK_CACHEKIT_CONFIG='{"url": "redis://cache:6379/0"}' flask run

Routes: ``GET/POST /items``, ``GET/PUT/DELETE /items/<id>``, ``GET /cache/stats``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from cachekit import Cache

from .repository import ItemRepository, create_schema

__all__ = ["DEFAULTS", "api", "create_app", "get_cache", "get_items", "init_cachekit"]

DEFAULTS: dict[str, Any] = {
    "CACHEKIT_DRIVER": "memory",
    "CACHEKIT_CONFIG": {"max_size": 10_000},
    "CACHEKIT_TTL": 300,
    "CACHEKIT_NAMESPACE": "items-api",
}
_MAX_LIMIT = 100

api = Blueprint("items_api", __name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    E.g.::

        app = create_app({"DATABASE": "/tmp/items.db", "CACHEKIT_TTL": 60})
        app = create_app({"CACHEKIT_DRIVER": "redis", "CACHEKIT_CONFIG": {"url": "redis://127.0.0.1:6379/0"}})

    :param config: settings that override :data:`DEFAULTS` and the ``FLASK_*`` environment variables.
    """
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DATABASE=os.path.join(app.instance_path, "items.sqlite3"), **DEFAULTS)
    app.config.from_prefixed_env()
    if config is not None:
        app.config.from_mapping(config)
    init_cachekit(app)
    _init_database(app)
    app.teardown_appcontext(_close_db)
    app.register_blueprint(api)
    return app


def init_cachekit(app: Flask) -> Cache:
    """Build the cache from ``app.config`` and keep it in ``app.extensions["cachekit"]``.

    Built once per application, not per request: the cache holds the entries (memory driver) or the
    connection pool (Redis), and its statistics.
    """
    driver = app.config["CACHEKIT_DRIVER"]
    cache = Cache(
        # FLASK_CACHEKIT_DRIVER=null reaches us as None (Flask parses env values as JSON): it means "no cache".
        "null" if driver is None else driver,
        namespace=app.config["CACHEKIT_NAMESPACE"],
        ttl=app.config["CACHEKIT_TTL"],
        config=app.config["CACHEKIT_CONFIG"],
    )
    app.extensions["cachekit"] = cache
    return cache


def get_cache() -> Cache:
    """The current application's cache."""
    cache: Cache = current_app.extensions["cachekit"]
    return cache


def get_items() -> ItemRepository:
    """This request's repository, over this request's database connection."""
    if "items" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"])
        g.items = ItemRepository(g.db, get_cache())
    items: ItemRepository = g.items
    return items


def _init_database(app: Flask) -> None:
    path = app.config["DATABASE"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with closing(sqlite3.connect(path)) as db:
        create_schema(db)


def _close_db(exc: BaseException | None) -> None:
    db = g.pop("db", None)
    g.pop("items", None)
    if db is not None:
        db.close()


# -- routes ---------------------------------------------------------------------------------------------------


@api.get("/items")
def list_items() -> Response | tuple[Response, int]:
    """A page of items and the total: ``?limit=25&offset=0``."""
    try:
        limit = _int_arg("limit", 25, 1, _MAX_LIMIT)
        offset = _int_arg("offset", 0, 0, None)
    except ValueError as exc:
        return _error(str(exc), 400)
    items = get_items()
    return jsonify(items=items.list(limit=limit, offset=offset), count=items.count(), limit=limit, offset=offset)


@api.post("/items")
def create_item() -> tuple[Response, int]:
    """Create an item from ``{"name": ..., "price": ...}``; 201 with the item."""
    try:
        return jsonify(get_items().insert(_json_object())), 201
    except ValueError as exc:
        return _error(str(exc), 400)


@api.get("/items/<int:item_id>")
def get_item(item_id: int) -> Response | tuple[Response, int]:
    """One item, or 404."""
    row = get_items().get(item_id)
    return jsonify(row) if row is not None else _error(f"no item {item_id}", 404)


@api.route("/items/<int:item_id>", methods=["PUT", "PATCH"])
def update_item(item_id: int) -> Response | tuple[Response, int]:
    """Change the fields given in the JSON body; 404 when there is no such item."""
    try:
        row = get_items().update(item_id, _json_object())
    except ValueError as exc:
        return _error(str(exc), 400)
    return jsonify(row) if row is not None else _error(f"no item {item_id}", 404)


@api.delete("/items/<int:item_id>")
def delete_item(item_id: int) -> Response | tuple[Response, int]:
    """Remove an item; 204, or 404 when there was none."""
    if not get_items().delete(item_id):
        return _error(f"no item {item_id}", 404)
    return Response(status=204)


@api.get("/cache/stats")
def cache_stats() -> Response:
    """The cache's counters: hits, misses, sets, deletes, errors, hit_rate, size, driver details."""
    return jsonify(get_cache().stats().as_dict())


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


def _int_arg(name: str, default: int, low: int, high: int | None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be between {low} and {high if high is not None else 'any'}; got {value}")
    return value


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error=message), status
