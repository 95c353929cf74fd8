"""The app config: connects the cache-invalidation signals once the models are loaded."""

from __future__ import annotations

from django.apps import AppConfig


class DemoAppConfig(AppConfig):
    """E.g.: ``INSTALLED_APPS = ["recipes.django.demoapp"]``."""

    name = "recipes.django.demoapp"
    label = "demoapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Connect the signals here, not at import: the models must be loaded first."""
        from ..signals_invalidation import connect_invalidation
        from .repositories import articles

        connect_invalidation(articles)
