#!/bin/bash
# tests/fuzz/run.sh BUILD SECONDS NAME...: runs each libFuzzer target
# BUILD/fuzz/fuzz_NAME for SECONDS seconds, one after another (the machine's
# cores are shared), starting from the seed corpus tests/fuzz/corpus/NAME
# (read only: new inputs go to BUILD/fuzz-corpus/NAME). A crash, leak,
# sanitizer report or oracle failure stops that target, leaves the input in
# BUILD/fuzz-artifacts/NAME/, and makes the run fail. Prints the executions
# per target and ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
B=$1; secs=$2; shift 2
pass=0; fail=0
for name in "$@"; do
    bin="$B/fuzz/fuzz_$name"
    work="$B/fuzz-corpus/$name"; art="$B/fuzz-artifacts/$name"
    mkdir -p "$work" "$art"
    log="$B/fuzz-$name.log"
    extra=()
    [ -f "tests/fuzz/$name.dict" ] && extra+=("-dict=tests/fuzz/$name.dict")
    echo "=== fuzz $name (${secs}s)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=25 \
        -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$art/" "${extra[@]}" "$work" "tests/fuzz/corpus/$name" \
        > "$log" 2>&1
    rc=$?
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' )
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1))
        echo "ok fuzz $name: ${execs:-?} executions, $cov"
    else
        fail=$((fail + 1))
        echo "not ok fuzz $name: exit $rc after ${execs:-?} executions; log $log, input in $art/"
        grep -E 'ERROR|FUZZ ORACLE|SUMMARY|runtime error' "$log" | head -5
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
