"""JSON pointers (RFC 6901): read a value out of a document, and nest a value under a path.

Only the pointers an operator wrote in settings are followed; nothing from a request is.
"""

from __future__ import annotations

from pydantic import JsonValue


class PointerError(LookupError):
    """A pointer that is malformed or names nothing in the document."""


def tokens(pointer: str) -> list[str]:
    """The reference tokens of `pointer`, unescaped (`~1` is '/', `~0` is '~')."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError(f"JSON pointer {pointer!r} must be empty or start with '/'")
    parts = pointer[1:].split("/")
    for part in parts:
        rest = part.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PointerError(f"JSON pointer {pointer!r} has '~' not followed by 0 or 1")
    return [part.replace("~1", "/").replace("~0", "~") for part in parts]


def find(document: JsonValue, pointer: str) -> JsonValue:
    """The value `pointer` names in `document`; `PointerError` if there is none."""
    current = document
    for token in tokens(pointer):
        if isinstance(current, dict):
            if token not in current:
                raise PointerError(f"{pointer!r}: no member {token!r}")
            current = current[token]
        elif isinstance(current, list):
            # RFC 6901: an array index is '0' or digits without a leading zero.
            if not token.isdigit() or (token != "0" and token.startswith("0")):
                raise PointerError(f"{pointer!r}: {token!r} is not an array index")
            index = int(token)
            if index >= len(current):
                raise PointerError(f"{pointer!r}: index {index} is past the array's end")
            current = current[index]
        else:
            raise PointerError(f"{pointer!r}: {token!r} reaches into a scalar")
    return current


def nest(pointer: str, value: JsonValue) -> JsonValue:
    """A document holding `value` at `pointer`, e.g. `nest('/config', v)` is `{'config': v}`."""
    for token in reversed(tokens(pointer)):
        value = {token: value}
    return value
