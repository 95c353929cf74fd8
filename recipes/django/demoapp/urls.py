"""``/articles/`` and ``/articles/<pk>/``, served by the recipe's views over the cached repository."""

from __future__ import annotations

from django.urls import path

from ..views import RowDetailView, RowListView
from .repositories import articles

urlpatterns = [
    path("articles/", RowListView.as_view(repository=articles), name="article-list"),
    # <int:pk>: the cache hashes ids with their type, and the signals invalidate the int pk.
    path("articles/<int:pk>/", RowDetailView.as_view(repository=articles), name="article-detail"),
]
