"""Kubernetes resource quantities (`500m`, `2Gi`) and the canonical form the API server prints.

The API server stores a quantity and prints it back canonically: `0.5` comes back as `500m`,
`1024Mi` as `1Gi`. A plan whose `after` says `0.5` would never read back as applied, and its
revert would look like someone else's edit, so a quantity is accepted only in the form the
server will print.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?"
)
_DECIMAL = {"m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIX = {exponent: suffix for suffix, exponent in _DECIMAL.items()}
_BINARY_SUFFIX = {0: "", **{exponent: suffix for suffix, exponent in _BINARY.items()}}


def parse(text: str) -> tuple[Fraction, str] | None:
    """The quantity's exact value and its format (`decimal`, `binary`, `exponent`), or None."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return None
    number = Fraction(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * 2 ** _BINARY[suffix], "binary"
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix], "decimal"
    return number * Fraction(10) ** int(suffix[1:]), "exponent"


def canonical(text: str) -> str | None:
    """The form the API server prints `text` in, or None if it is not a quantity."""
    parsed = parse(text)
    if parsed is None:
        return None
    value, fmt = parsed
    # The server keeps a precision of 1m and rounds finer values up.
    value = Fraction(math.ceil(value * 1000), 1000)
    if value == 0:
        return "0"
    if fmt == "binary" and (abs(value) < 1024 or value.denominator != 1):
        fmt = "decimal"
    if fmt == "binary":
        mantissa, exponent = int(value), 0
        while mantissa % 1024 == 0 and exponent < 60:
            mantissa //= 1024
            exponent += 10
        return f"{mantissa}{_BINARY_SUFFIX[exponent]}"
    mantissa, exponent = int(value * 1000), -3
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    if fmt == "exponent":
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def value_of(text: str) -> Fraction:
    """The exact value of a quantity already known to parse."""
    parsed = parse(text)
    if parsed is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    return parsed[0]
