"""A griffe extension for the API reference (``.ci/mkdocs.yml``): our docstrings are reST, the site is Markdown.

- reST roles (``:class:`~cachekit.Cache```) become code spans (```Cache```): mkdocstrings would print them raw;
- ``E.g.::`` (a literal block follows) becomes ``E.g.:``, the indented block staying a code block;
- a module constant documented by ``#:`` comment lines above it (the Sphinx convention the package uses) gets
  them as its docstring, so the reference shows what each constant means.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|ref):`(~?)([^`]+)`")


def _plain(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def markdown(text: str) -> str:
    """reST roles as code spans; ``text::`` at a line's end as ``text:``."""
    return re.sub(r"(?<=\S)::$", ":", _ROLE.sub(_plain, text), flags=re.M)


class RestToMarkdown(griffe.Extension):
    """Rewrite each docstring once loaded; give ``#:``-documented attributes their comment as docstring."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_attribute and obj.lineno:
            comment = _comment_above(obj)
            if comment:
                obj.docstring = griffe.Docstring(comment, parent=obj, lineno=obj.lineno)
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)


def _comment_above(obj: griffe.Object) -> str:
    try:
        lines = obj.lines_collection[obj.filepath] if not isinstance(obj.filepath, list) else []
    except KeyError:
        return ""
    if not lines or obj.lineno is None:
        return ""
    found: list[str] = []
    index = obj.lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(found)
