"""The one number formatter: significant digits, whole integer parts, exponents only where they help."""

import pytest

from rnnlab.text import format_number


@pytest.mark.parametrize(
    ("x", "digits", "text"),
    [
        (1234.5678, 4, "1235"),
        (0.123456, 4, "0.1235"),
        (1e-5, 4, "1e-05"),
        (6.8e-05, 2, "6.8e-05"),
        (2.5e-20, 2, "2.5e-20"),
        (0.00012, 2, "0.00012"),
        (0.6391, 2, "0.64"),
        (1.0, 2, "1"),  # trailing zeros dropped
        (945.3, 2, "945"),  # the integer part kept, not 9.5e+02
        (99.97, 2, "100"),
        (30000.0, 2, "30000"),
        (1.5e6, 2, "1.5e+06"),
        (-0.5, 2, "-0.5"),
        (0.0, 2, "0"),
        (7, 4, "7"),  # an integer exactly
        (123456789, 2, "123456789"),
        (float("nan"), 2, "nan"),
        (float("inf"), 4, "inf"),
        (float("-inf"), 4, "-inf"),
    ],
)
def test_format_number(x, digits, text):
    assert format_number(x, digits) == text


def test_missing_percent_and_the_default_digits():
    assert format_number(None) == "?" and format_number(None, missing="-") == "-"
    assert format_number(0.123456) == "0.1235"
    assert [format_number(x, 2, percent=True) for x in (0.3, 0.0, 0.004, 1.0)] == [
        "30%",
        "0%",
        "0.4%",
        "100%",
    ]
    assert format_number(float("nan"), percent=True) == "nan"
    with pytest.raises(ValueError, match="digits must be at least 1, got 0"):
        format_number(1.0, 0)
