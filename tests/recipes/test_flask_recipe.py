"""The Flask recipe through Flask's test client: the app factory, the cached repository, the stats endpoint.

``recipes/flask/app_factory.py`` and ``repository.py`` are the files the recipe's README tells users to copy.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cachekit.errors import ConfigurationError
from recipes.flask.app_factory import create_app, get_cache


@pytest.fixture
def database(tmp_path: Path) -> str:
    return str(tmp_path / "items.sqlite3")


@pytest.fixture
def app(database: str) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "DATABASE": database})
    yield app
    app.extensions["cachekit"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def add(client: FlaskClient, name: str, price: float) -> dict[str, Any]:
    response = client.post("/items", json={"name": name, "price": price})
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def behind_the_cache(database: str, sql: str, *params: Any) -> None:
    """Change the table without the app, so only a real database read can see the change."""
    with closing(sqlite3.connect(database)) as db, db:
        db.execute(sql, params)


def stats(client: FlaskClient) -> dict[str, Any]:
    return dict(client.get("/cache/stats").get_json())


def test_get_is_served_from_the_cache_until_put_invalidates(client: FlaskClient, database: str) -> None:
    pen = add(client, "pen", 1.5)
    assert client.get(f"/items/{pen['id']}").get_json() == pen
    behind_the_cache(database, "UPDATE items SET name = 'fountain pen' WHERE id = ?", pen["id"])
    # Still the cached row: the second GET did not read the table.
    assert client.get(f"/items/{pen['id']}").get_json()["name"] == "pen"
    response = client.put(f"/items/{pen['id']}", json={"price": 2.0})
    assert response.status_code == 200
    assert response.get_json() == {"id": pen["id"], "name": "fountain pen", "price": 2.0}
    assert client.get(f"/items/{pen['id']}").get_json() == {"id": pen["id"], "name": "fountain pen", "price": 2.0}


def test_put_keeps_other_items_cached(client: FlaskClient, database: str) -> None:
    pen, ink = add(client, "pen", 1.5), add(client, "ink", 4.0)
    client.get(f"/items/{ink['id']}")
    behind_the_cache(database, "UPDATE items SET name = 'blue ink' WHERE id = ?", ink["id"])
    client.put(f"/items/{pen['id']}", json={"name": "red pen"})
    assert client.get(f"/items/{ink['id']}").get_json()["name"] == "ink"


def test_delete_invalidates(client: FlaskClient) -> None:
    pen = add(client, "pen", 1.5)
    assert client.get(f"/items/{pen['id']}").status_code == 200
    assert client.get("/items").get_json()["count"] == 1
    assert client.delete(f"/items/{pen['id']}").status_code == 204
    assert client.get(f"/items/{pen['id']}").status_code == 404
    assert client.get("/items").get_json()["count"] == 0
    assert client.delete(f"/items/{pen['id']}").status_code == 404


def test_post_changes_list_and_count(client: FlaskClient) -> None:
    add(client, "pen", 1.5)
    add(client, "ink", 4.0)
    before = client.get("/items").get_json()
    assert (before["count"], [i["name"] for i in before["items"]]) == (2, ["pen", "ink"])
    add(client, "paper", 3.0)
    after = client.get("/items").get_json()
    assert (after["count"], [i["name"] for i in after["items"]]) == (3, ["pen", "ink", "paper"])


def test_post_clears_a_cached_miss_of_the_new_id(client: FlaskClient) -> None:
    pen = add(client, "pen", 1.5)
    next_id = pen["id"] + 1
    assert client.get(f"/items/{next_id}").status_code == 404
    assert add(client, "ink", 4.0)["id"] == next_id
    assert client.get(f"/items/{next_id}").get_json()["name"] == "ink"


def test_pages_are_separate_entries(client: FlaskClient) -> None:
    for n in range(5):
        add(client, f"item {n}", n)
    first = client.get("/items?limit=2").get_json()["items"]
    second = client.get("/items?limit=2&offset=2").get_json()["items"]
    assert [i["name"] for i in first + second] == ["item 0", "item 1", "item 2", "item 3"]


def test_stats_endpoint_counts_hits_misses_and_invalidations(client: FlaskClient) -> None:
    pen = add(client, "pen", 1.5)
    start = stats(client)
    assert (start["hits"], start["misses"], start["size"]) == (0, 0, 0)
    client.get(f"/items/{pen['id']}")
    client.get(f"/items/{pen['id']}")
    client.get(f"/items/{pen['id']}")
    warm = stats(client)
    assert (warm["hits"], warm["misses"], warm["sets"], warm["size"]) == (2, 1, 1, 1)
    assert warm["hit_rate"] == pytest.approx(2 / 3)
    assert warm["driver"] == "memory"
    client.put(f"/items/{pen['id']}", json={"price": 2.0})
    after = stats(client)
    # A write bumps the generations of what it changed (the item, the lists and counts); nothing is deleted.
    assert after["details"]["invalidations"] > warm["details"]["invalidations"]
    assert after["size"] == 0  # the old entry is an orphan now, not a reachable entry
    assert after["errors"] == 0
    assert client.get(f"/items/{pen['id']}").get_json()["price"] == 2.0
    assert stats(client)["misses"] == after["misses"] + 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "pen"}, "missing fields ['price']"),
        ({"name": "pen", "price": 1, "colour": "red"}, "unknown fields ['colour']"),
        ({"name": "", "price": 1}, "name must be"),
        ({"name": "pen", "price": "cheap"}, "price must be a number"),
        (["pen", 1], "JSON object"),
    ],
)
def test_bad_writes_are_400(client: FlaskClient, body: Any, message: str) -> None:
    response = client.post("/items", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert client.get("/items").get_json()["count"] == 0


def test_bad_paging_is_400(client: FlaskClient) -> None:
    for query in ("limit=ten", "limit=0", "limit=101", "offset=-1"):
        response = client.get(f"/items?{query}")
        assert response.status_code == 400, query


def test_update_of_a_missing_item_is_404(client: FlaskClient) -> None:
    assert client.put("/items/42", json={"price": 1}).status_code == 404


def test_config_comes_from_app_config(database: str) -> None:
    app = create_app({"DATABASE": database, "CACHEKIT_NAMESPACE": "shop", "CACHEKIT_TTL": 5})
    with app.app_context():
        cache = get_cache()
        assert (cache.namespace, cache.ttl, cache.driver.name) == ("shop", 5.0, "memory")


def test_a_bad_cache_setting_fails_at_startup(database: str) -> None:
    with pytest.raises(ConfigurationError, match="max_sise"):
        create_app({"DATABASE": database, "CACHEKIT_CONFIG": {"max_sise": 10}})


def test_null_driver_from_the_environment_turns_caching_off(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_CACHEKIT_DRIVER", "null")
    app = create_app({"DATABASE": database})
    client = app.test_client()
    pen = add(client, "pen", 1.5)
    client.get(f"/items/{pen['id']}")
    behind_the_cache(database, "UPDATE items SET name = 'quill' WHERE id = ?", pen["id"])
    assert client.get(f"/items/{pen['id']}").get_json()["name"] == "quill"
    assert stats(client)["driver"] == "null"


@pytest.mark.redis
def test_redis_from_the_environment(
    database: str, monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_prefix: str
) -> None:
    monkeypatch.setenv("FLASK_CACHEKIT_DRIVER", "redis")
    monkeypatch.setenv("FLASK_CACHEKIT_CONFIG", json.dumps({"url": redis_url, "key_prefix": redis_prefix}))
    app = create_app({"DATABASE": database})
    try:
        client = app.test_client()
        pen = add(client, "pen", 1.5)
        client.get(f"/items/{pen['id']}")
        behind_the_cache(database, "UPDATE items SET name = 'quill' WHERE id = ?", pen["id"])
        assert client.get(f"/items/{pen['id']}").get_json()["name"] == "pen"
        client.put(f"/items/{pen['id']}", json={"price": 3})
        assert client.get(f"/items/{pen['id']}").get_json() == {"id": pen["id"], "name": "quill", "price": 3.0}
        body = stats(client)
        assert (body["driver"], body["hits"]) == ("redis", 1)
    finally:
        app.extensions["cachekit"].close()
