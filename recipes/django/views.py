"""JSON views that read through a cached repository.

Problem: an API endpoint for a row and a list endpoint with paging and a filter, served from the cache, that
still show a change the moment it is saved.

Solution: the views only read through the repository; the signals in ``signals_invalidation.py`` keep its
entries fresh, whoever saves the row. Wire them in ``urls.py`` with the repository as an argument::

    urlpatterns = [
        path("articles/", RowListView.as_view(repository=articles)),
        path("articles/<int:pk>/", RowDetailView.as_view(repository=articles)),
    ]

``GET /articles/?category=news&limit=10&offset=20`` lists one partition: query parameters that name all the
fields of one of the repository's partitions select it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views import View

from .repository import ModelRepository

__all__ = ["RowDetailView", "RowListView"]

_MAX_LIMIT = 100


class RepositoryView(View):
    """A read-only view over a :class:`ModelRepository`, given to ``as_view(repository=...)``."""

    repository: ModelRepository | None = None
    http_method_names = ["get", "head", "options"]

    def get_repository(self) -> ModelRepository:
        """The repository; a missing one is a wiring mistake, reported as such."""
        if self.repository is None:
            raise TypeError(f"{type(self).__name__}.as_view() needs repository=<a ModelRepository>")
        return self.repository


class RowDetailView(RepositoryView):
    """``GET .../<pk>/``: one row as JSON, or 404."""

    def get(self, request: HttpRequest, pk: Any) -> JsonResponse:
        """The row with primary key ``pk``."""
        row = self.get_repository().get(pk)
        if row is None:
            return JsonResponse({"error": f"no row with id {pk}"}, status=404)
        return JsonResponse(row)


class RowListView(RepositoryView):
    """``GET .../?limit=&offset=&<partition field>=``: a page of rows and the total, as JSON."""

    default_limit = 25

    def get(self, request: HttpRequest) -> JsonResponse:
        """A page of rows, with the count of all rows in the same scope."""
        try:
            limit = _bounded_int(request.GET.get("limit"), self.default_limit, 1, _MAX_LIMIT, "limit")
            offset = _bounded_int(request.GET.get("offset"), 0, 0, None, "offset")
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        repository = self.get_repository()
        partition, values = repository.partition_for(request.GET.dict())
        items = repository.list(limit=limit, offset=offset, partition=partition, partition_values=values)
        count = repository.count(partition=partition, partition_values=values)
        return JsonResponse({"items": items, "count": count, "limit": limit, "offset": offset})


def _bounded_int(raw: str | None, default: int, low: int, high: int | None, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bounds}; got {value}")
    return value
