"""Page-number pagination with bounded page sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

MAX_PAGE_SIZE = 200


@dataclass
class Page:
    items: list[Any]
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def to_int(value: Any, default: int, *, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return max(low, min(high, number))


def paginate(qs: QuerySet[Any], page: Any = 1, size: Any = 25) -> Page:
    size_n = to_int(size, 25, low=1, high=MAX_PAGE_SIZE)
    total = qs.count()
    pages = max(1, -(-total // size_n))
    number = to_int(page, 1, low=1, high=pages)
    start = (number - 1) * size_n
    return Page(items=list(qs[start : start + size_n]), number=number, size=size_n, total=total)
