"""A tiny text-statistics library: the project under test."""

from .stats import reading_time_minutes, top_words, word_count, words

__all__ = ["words", "word_count", "top_words", "reading_time_minutes"]
