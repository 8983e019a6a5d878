import pytest

from textstats import reading_time_minutes, top_words

TEXT = "the cat and the hat and the bat"


def test_top_words_orders_by_count_then_name():
    assert top_words(TEXT, 3) == [("the", 3), ("and", 2), ("bat", 1)]


def test_top_words_n_larger_than_vocabulary():
    assert len(top_words("a b", 10)) == 2


@pytest.mark.parametrize("count,minutes", [(0, 0), (1, 1), (200, 1), (201, 2)])
def test_reading_time(count, minutes):
    assert reading_time_minutes("word " * count) == minutes


def test_reading_time_rejects_bad_speed():
    with pytest.raises(ValueError):
        reading_time_minutes("x", words_per_minute=0)
