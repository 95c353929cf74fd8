"""The model the repository reads: a product with a category (its partition)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Product"]


class Base(DeclarativeBase):
    """The declarative base of this example's tables."""


class Product(Base):
    """A product in a shop's catalogue."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(50), index=True)
    price_cents: Mapped[int]
