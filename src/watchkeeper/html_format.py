"""Number, share, p-value and time formatting for the HTML report and the dashboard."""

from __future__ import annotations

import math
from datetime import datetime

import jinja2

__all__ = ["fmt_compact", "fmt_delta", "fmt_num", "fmt_p", "fmt_pct", "fmt_time"]

DASH = "—"


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite(value: object) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def fmt_num(value: object) -> str:
    """Format a statistic: integers with thousands separators, floats to 4 significant digits."""
    if value is None or isinstance(value, jinja2.Undefined):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = f"{value:,}"
    elif not isinstance(value, float):
        return str(value)
    elif math.isnan(value):
        return DASH
    elif math.isinf(value):
        text = "∞" if value > 0 else "-∞"
    elif value == 0:
        text = "0"
    elif abs(value) >= 1e-3:
        text = f"{value:.4g}"
        text = f"{value:,.0f}" if "e" in text or abs(value) >= 1e4 else text
    else:
        text = _sci(value, 2)
    return "−" + text[1:] if text.startswith("-") else text


def _sci(value: float, digits: int) -> str:
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt_p(value: object) -> str:
    """Format a p-value: fixed for p >= 0.001, scientific below."""
    p = finite(value)
    if p is None:
        return DASH
    if p == 0:
        return "< 1e-300"
    return f"{p:.3f}" if p >= 1e-3 else _sci(p, 2)


def fmt_pct(value: object) -> str:
    """Format a share in [0, 1] as a percentage."""
    share = finite(value)
    if share is None:
        return DASH
    if share == 0:
        return "0%"
    if abs(share) < 1e-4:
        return "<0.01%" if share > 0 else "−<0.01%"
    if abs(share) < 0.01:
        return f"{share * 100:.2f}%"
    return f"{share * 100:.1f}%"


def fmt_delta(value: object, *, pct: bool = False) -> str:
    """Signed change (true minus sign), as a number or a percentage."""
    delta = finite(value)
    if delta is None:
        return DASH
    text = fmt_pct(abs(delta)) if pct else fmt_num(abs(delta))
    return text if delta == 0 else ("+" if delta > 0 else "−") + text


def fmt_compact(value: object) -> str:
    """Like :func:`fmt_num`, but large magnitudes get a k/M/G/T suffix (4 significant digits)."""
    number = finite(value)
    if number is None or abs(number) < 1e4:
        return fmt_num(value)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= scale:
            return f"{number / scale:.4g}{suffix}"
    return fmt_num(value)  # pragma: no cover - unreachable


def fmt_time(value: object) -> str:
    """ISO-8601 timestamp to ``YYYY-MM-DD HH:MM`` plus ``UTC`` or the offset."""
    if not isinstance(value, str):
        return DASH
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return value
    offset = stamp.utcoffset()
    zone = "" if offset is None else " UTC" if not offset else f" {stamp:%z}"
    return f"{stamp:%Y-%m-%d %H:%M}{zone}"
