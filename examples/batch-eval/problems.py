"""A dozen small coding problems with reference tests and "generated"
solutions, standing in for an LLM's answers.  Most are right, some are wrong,
one never terminates and one eats memory without bound.

``expected`` is what a correct sandbox must report for each solution; the
evaluator checks it so CI notices when the server misclassifies a run.
"""

from typing import List, NamedTuple


class Problem(NamedTuple):
    name: str
    solution: str  # the generated code under evaluation
    tests: str  # reference tests: plain asserts
    expected: str  # pass | fail | timeout | oom


PROBLEMS: List[Problem] = [
    Problem(
        "add",
        "def add(a, b):\n    return a + b\n",
        "assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(0.5, 0.25) == 0.75\n",
        "pass",
    ),
    Problem(
        "reverse_string",
        "def reverse_string(s):\n    return s[::-1]\n",
        "assert reverse_string('abc') == 'cba'\nassert reverse_string('') == ''\n",
        "pass",
    ),
    Problem(
        "is_palindrome",
        # Wrong: ignores neither case nor punctuation.
        "def is_palindrome(s):\n    return s == s[::-1]\n",
        "assert is_palindrome('racecar')\n"
        "assert is_palindrome('A man, a plan, a canal: Panama')\n"
        "assert not is_palindrome('boxer')\n",
        "fail",
    ),
    Problem(
        "fizzbuzz",
        "def fizzbuzz(n):\n"
        "    out = []\n"
        "    for i in range(1, n + 1):\n"
        "        word = ('Fizz' if i % 3 == 0 else '') + ('Buzz' if i % 5 == 0 else '')\n"
        "        out.append(word or str(i))\n"
        "    return out\n",
        "assert fizzbuzz(5) == ['1', '2', 'Fizz', '4', 'Buzz']\nassert fizzbuzz(15)[-1] == 'FizzBuzz'\n",
        "pass",
    ),
    Problem(
        "fibonacci",
        # Wrong: off by one (returns fib(n+1)).
        "def fibonacci(n):\n    a, b = 1, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
        "assert fibonacci(0) == 0\nassert fibonacci(1) == 1\nassert fibonacci(10) == 55\n",
        "fail",
    ),
    Problem(
        "is_prime",
        "def is_prime(n):\n"
        "    if n < 2:\n"
        "        return False\n"
        "    i = 2\n"
        "    while i * i <= n:\n"
        "        if n % i == 0:\n"
        "            return False\n"
        "        i += 1\n"
        "    return True\n",
        "assert [n for n in range(20) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19]\n"
        "assert is_prime(7919)\n",
        "pass",
    ),
    Problem(
        "gcd",
        "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return abs(a)\n",
        "assert gcd(12, 18) == 6\nassert gcd(17, 5) == 1\nassert gcd(0, 9) == 9\n",
        "pass",
    ),
    Problem(
        "flatten",
        "def flatten(xs):\n"
        "    out = []\n"
        "    for x in xs:\n"
        "        if isinstance(x, list):\n"
        "            out.extend(flatten(x))\n"
        "        else:\n"
        "            out.append(x)\n"
        "    return out\n",
        "assert flatten([1, [2, [3, [4]], 5]]) == [1, 2, 3, 4, 5]\nassert flatten([]) == []\n",
        "pass",
    ),
    Problem(
        "count_vowels",
        # Wrong: forgets upper-case vowels.
        "def count_vowels(s):\n    return sum(1 for c in s if c in 'aeiou')\n",
        "assert count_vowels('hello') == 2\nassert count_vowels('AEIOU xyz') == 5\n",
        "fail",
    ),
    Problem(
        "two_sum",
        "def two_sum(nums, target):\n"
        "    seen = {}\n"
        "    for i, x in enumerate(nums):\n"
        "        if target - x in seen:\n"
        "            return [seen[target - x], i]\n"
        "        seen[x] = i\n"
        "    return None\n",
        "assert two_sum([2, 7, 11, 15], 9) == [0, 1]\nassert two_sum([3, 3], 6) == [0, 1]\n"
        "assert two_sum([1, 2], 7) is None\n",
        "pass",
    ),
    Problem(
        "sum_digits",
        # Never terminates: forgets to shrink n.
        "def sum_digits(n):\n    total = 0\n    while n:\n        total += n % 10\n    return total\n",
        "assert sum_digits(123) == 6\nassert sum_digits(0) == 0\n",
        "timeout",
    ),
    Problem(
        "count_primes_below",
        # Memory hog: materialises a list of n squares "for speed".
        "def count_primes_below(n):\n"
        "    squares = [i * i for i in range(n)]\n"
        "    count = 0\n"
        "    for k in range(2, n):\n"
        "        j = 2\n"
        "        while squares[j] <= k and k % j:\n"
        "            j += 1\n"
        "        count += squares[j] > k\n"
        "    return count\n",
        "assert count_primes_below(10) == 4\nassert count_primes_below(10 ** 9) == 50847534\n",
        "oom",
    ),
]
