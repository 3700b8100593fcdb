import pytest

from bimedix.mcq import option_letters


def test_letters_per_language():
    assert option_letters("en", 4) == ("A", "B", "C", "D")
    assert option_letters("ar", 4) == ("أ", "ب", "ج", "د")
    assert "\u0640" not in "".join(option_letters("ar", 5))  # no tatweel


@pytest.mark.parametrize(("language", "count"), [("fr", 4), ("en", 0), ("ar", 6)])
def test_bad_requests_name_the_problem(language, count):
    with pytest.raises(ValueError, match=language if language == "fr" else str(count)):
        option_letters(language, count)
