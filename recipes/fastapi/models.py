"""The recipe's model: a user row whose ``version`` grows with every UPDATE (SQLAlchemy's ``version_id_col``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "User"]


class Base(DeclarativeBase):
    """Declarative base of the recipe's models."""


class User(Base):
    """A user; ``version`` starts at 1 and each UPDATE adds one (optimistic concurrency, and a freshness clock)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(nullable=False)

    __mapper_args__: dict[str, Any] = {"version_id_col": version}
