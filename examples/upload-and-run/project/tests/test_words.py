from textstats import word_count, words


def test_words_lowercases_and_splits_on_punctuation():
    assert words("Hello, World! hello.") == ["hello", "world", "hello"]


def test_words_keeps_apostrophes():
    assert words("Don't panic") == ["don't", "panic"]


def test_word_count_empty():
    assert word_count("") == 0
    assert word_count("  \n\t ") == 0
