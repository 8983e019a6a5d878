#!/usr/bin/env bash
# `make fuzz-limits`: runs each coverage-built harness once over its seeds
# (fuzz/seeds/<name> and the generated near-limit seeds) and checks that
# every line listed in fuzz/limits.txt ran at least once.  Prints each
# line's execution count.  Environment: B (build dir), SEEDS (generated
# seeds dir), TABLE (name:max_len pairs from the Makefile).
set -euo pipefail
out="$B/fuzz/cov"
declare -A maxlen
for nl in $TABLE; do maxlen[${nl%%:*}]=${nl#*:}; done
fail=0
for n in $(awk -F'\t' '!/^#/ && NF {print $1}' fuzz/limits.txt | sort -u); do
    rm -f "$out/$n.profraw" "$out/$n.profdata"
    if ! LLVM_PROFILE_FILE="$out/$n.profraw" "$out/$n" -runs=0 -max_len="${maxlen[$n]}" \
            -rss_limit_mb=2048 "fuzz/seeds/$n" "$SEEDS/$n" > "$out/$n.log" 2>&1; then
        tail -n 20 "$out/$n.log"
        echo "FAIL: $n did not run its seeds (log: $out/$n.log)"
        fail=1
        continue
    fi
    llvm-profdata merge -sparse -o "$out/$n.profdata" "$out/$n.profraw"
    while IFS=$'\t' read -r h file pattern; do
        [ "$h" = "$n" ] || continue
        # llvm-cov show: "  <line>|  <count>|<source>"
        row=$(llvm-cov show "$out/$n" -instr-profile="$out/$n.profdata" "$file" |
              grep -F -- "$pattern" || true)
        if [ "$(printf '%s\n' "$row" | grep -c .)" != 1 ]; then
            echo "FAIL: $n: \"$pattern\" is not on exactly one line of $file"
            fail=1
            continue
        fi
        line=$(printf '%s' "$row" | cut -d'|' -f1 | tr -d ' ')
        count=$(printf '%s' "$row" | cut -d'|' -f2 | tr -d ' ')
        if [ -z "$count" ] || [ "$count" = 0 ]; then
            echo "FAIL: $n: $file:$line never ran: $pattern"
            fail=1
        else
            echo "ok   $n: $file:$line ran $count times: $pattern"
        fi
    done < <(grep -v '^#' fuzz/limits.txt)
done
exit $fail
