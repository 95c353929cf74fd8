"""Parsing the Redis generation notifications: anything that does not parse is counted and dropped.

The bump script publishes ``"{namespace}\\n{scope}\\t{value}\\n..."`` on ``{key_prefix}~gen``, and anyone who can
``PUBLISH`` on that channel can send anything there. A message that raised while being parsed used to end the
subscriber's loop: every malformed message cost a lost subscription, and with it everything the process knew
(20 of them in a second cost 10 losses). :func:`parse_notification` never raises: a message is used only when
every line is a scope and a positive decimal counter, else it is ``None`` (the store counts it and drops it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._values import COUNTER_LIMIT

__all__ = ["MAX_NOTIFICATION_BYTES", "REFUSED", "parse_notification"]

#: A notification of a signed namespace whose values do not all carry a valid MAC (issue 19): refused, counted.
REFUSED: Final = "refused"

#: A larger message is dropped unparsed (a bump of thousands of scopes is far smaller).
MAX_NOTIFICATION_BYTES = 1 << 20


def parse_notification(data: object, seals: Mapping[str, Any] | None = None) -> Any:
    """``(namespace, [(scope, value), ...])`` of one notification, or ``None`` when it is not one cachekit sends.

    ``seals`` maps the signed namespaces to their :class:`~cachekit.generations._signing.GenerationSeal`: a
    message for one of them is used only when every value is ``"{value}.{mac}"`` with a valid MAC, else it is
    :data:`REFUSED` (a plain or forged value: never adopted).
    """
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_NOTIFICATION_BYTES:
            return None
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif isinstance(data, str):
        text = data
        if len(text) > MAX_NOTIFICATION_BYTES:
            return None
    else:
        return None
    namespace, *lines = text.split("\n")
    if not namespace or not lines:
        return None
    seal = seals.get(namespace) if seals else None
    if seal is not None:
        sealed = []
        for line in lines:
            scope, tab, text = line.rpartition("\t")
            opened = seal.open_text(namespace, scope, text) if tab and scope else None
            if opened is None:
                return REFUSED
            sealed.append((scope, opened))
        return namespace, sealed
    pairs = []
    for line in lines:
        scope, tab, value = line.rpartition("\t")
        if not tab or not scope or not value.isascii() or not value.isdigit() or len(value) > 16:
            return None
        number = int(value)
        if not 0 < number < COUNTER_LIMIT:
            return None
        pairs.append((scope, number))
    return namespace, pairs
