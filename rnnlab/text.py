"""Numbers for people: the one formatter behind the progress bar, the CLI's summary line, verdicts and tables.

format_number(1234.5678)          -> "1235"     4 significant digits by default; an integer part below
                                                10⁶ keeps every digit
format_number(0.6391, 2)          -> "0.64"     trailing zeros dropped
format_number(2.5e-20, 2)         -> "2.5e-20"  exponent form below 10⁻⁴ and from 10⁶
format_number(float("nan"))       -> "nan"      non-finite as nan, inf, -inf
format_number(None)               -> "?"        or `missing="-"` where a table marks "not measured"
format_number(0.3, 2, percent=True) -> "30%"
"""

from __future__ import annotations

import math

#: From this magnitude on, a number is written with an exponent (1.2e+06): more digits are not read.
EXPONENT_FROM = 1e6
#: Below this magnitude, a number is written with an exponent (6.8e-05), as Python's `g` format does.
EXPONENT_BELOW = 1e-4


def format_number(x: float | None, digits: int = 4, *, missing: str = "?", percent: bool = False) -> str:
    """`x` to `digits` significant digits, readable at a glance (see the module docstring).

    Args:
        x: a number (an integer is written exactly, unless `percent`), or None.
        digits: significant digits (at least 1); integer parts below 10⁶ keep all their digits.
        missing: what None is written as.
        percent: write 100 x followed by "%" (0.3 -> "30%").

    Example:
        >>> format_number(0.000123, 3), format_number(7), format_number(0.004, percent=True)
        ('0.000123', '7', '0.4%')
    """
    if digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits}")
    if x is None:
        return missing
    if isinstance(x, int) and not isinstance(x, bool) and not percent:
        return str(x)
    value = float(x) * (100.0 if percent else 1.0)
    if not math.isfinite(value):
        return str(value)  # nan, inf, -inf
    text = format(value, f".{digits}g")  # exponent form only below 10⁻⁴ or from 10^digits (after rounding)
    if "e" in text and EXPONENT_BELOW <= abs(value) < EXPONENT_FROM:
        text = f"{value:.0f}"  # 945.3 to 2 digits: "945", not "9.5e+02"
    return f"{text}%" if percent else text


def columns(header: list[str], rows: list[list[str]], right: set[int] | frozenset[int] = frozenset()) -> str:
    """A plain-text table: the header, a rule, then the rows, each column as wide as its widest cell and
    the columns numbered in `right` aligned right (numbers), the others left.

    Example:
        >>> print(columns(["variant", "mse"], [["lstm", "0.002"], ["rnn", "0.17"]], right={1}))
        variant    mse
        -------  -----
        lstm     0.002
        rnn       0.17
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])
