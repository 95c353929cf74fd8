"""One model: an article with a category (the partition its lists and counts are scoped to)."""

from __future__ import annotations

from django.db import models

from ..queryset import InvalidatingManager


class Article(models.Model):
    """A blog article."""

    title = models.CharField(max_length=200)
    category = models.CharField(max_length=50, db_index=True)
    body = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    # update()/bulk_create()/bulk_update()/delete() on Article.objects clear the cache entries they touch.
    objects = InvalidatingManager()

    def __str__(self) -> str:
        return self.title
