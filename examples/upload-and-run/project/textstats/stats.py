import math
import re
from collections import Counter
from typing import List, Tuple

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> List[str]:
    """Lower-cased words of ``text``; punctuation separates words."""
    return _WORD.findall(text.lower())


def word_count(text: str) -> int:
    return len(words(text))


def top_words(text: str, n: int) -> List[Tuple[str, int]]:
    """The ``n`` most frequent words, ties broken alphabetically."""
    counts = Counter(words(text))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def reading_time_minutes(text: str, words_per_minute: int = 200) -> int:
    """Whole minutes needed to read ``text`` (at least 1 for non-empty text)."""
    if words_per_minute <= 0:
        raise ValueError("words_per_minute must be positive")
    count = word_count(text)
    return math.ceil(count / words_per_minute) if count else 0
