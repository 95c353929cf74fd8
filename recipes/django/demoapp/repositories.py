"""The app's repositories: one :class:`ModelRepository` subclass per cached model."""

from __future__ import annotations

from ..repository import ModelRepository
from .models import Article

__all__ = ["ArticleRepository", "articles"]


class ArticleRepository(ModelRepository):
    """Cached reads of articles; lists and counts can be scoped to one category."""

    model = Article
    partitions = {"by_category": ["category"]}
    ordering = ("-updated_at", "-pk")


#: The instance views and signals share (it holds no state: the cache comes from settings).
articles = ArticleRepository()
