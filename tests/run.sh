#!/bin/bash
# Runs every test suite and ends with one line: "N passed, N failed".
#   unit:        $B/tests/test_*            (C, tests/unit/testlib.h)
#   sdk-c:       $B/tests/sdk_test_*        (C, against a real rtmd)
#   integration: tests/integration/*.test.mjs (node --test, real rtmd over real sockets)
#   browser:     tests/browser/*.test.mjs   (node --test, Chromium + coturn + rtmd)
#   fuzz:        $B/fuzz/replay_* over tests/fuzz/corpus/*/ (every seed and past crash)
#   pg:          the mint/broker integration files again, each rtmd on a Postgres
#                store the test starts (RTM_TEST_DB=postgres, tests/lib/postgres.mjs)
# RTM_VALGRIND=1 runs the C test binaries and every rtmd the tests start under valgrind.
# RTM_ONLY=unit|fuzz|sdk|integration|pg|browser runs one group.
set -u
cd "$(dirname "$0")/.."
B=${RTM_BUILD:-build}
export RTM_BUILD=$B
pass=0; fail=0
log=$(mktemp -d /tmp/rtm-test.XXXXXX)

count() { # file -> adds its last "N passed, N failed" line, or node's "# pass N"/"# fail N"
    local f=$1 p q
    p=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$f" | tail -1 | sed -E 's/^([0-9]+) passed.*/\1/')
    q=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$f" | tail -1 | sed -E 's/.* ([0-9]+) failed.*/\1/')
    if [ -z "$p" ]; then
        p=$(grep -E '^# pass [0-9]+' "$f" | tail -1 | awk '{print $3}')
        q=$(grep -E '^# fail [0-9]+' "$f" | tail -1 | awk '{print $3}')
    fi
    echo "${p:-0} ${q:-0}"
}

run_suite() { # name, command...
    local name=$1; shift
    local out="$log/$name.out"
    echo "=== $name"
    # a hung suite must not eat CI's 90 minutes: every group has a hard bound
    timeout -k 10 "${RTM_SUITE_TIMEOUT:-1500}" "$@" > "$out" 2>&1
    local rc=$?
    [ "$rc" -eq 124 ] && echo "!!! $name timed out after ${RTM_SUITE_TIMEOUT:-1500} s" >> "$out"
    cat "$out"
    read -r p q < <(count "$out")
    if [ "$rc" -ne 0 ] && [ "$q" -eq 0 ]; then q=1; echo "!!! $name exited $rc"; fi
    pass=$((pass + p)); fail=$((fail + q))
}

want() { [ -z "${RTM_ONLY:-}" ] || [ "$RTM_ONLY" = "$1" ]; }

VG=""
if [ -n "${RTM_VALGRIND:-}" ]; then
    VG="valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect"
fi

if want unit; then
    for t in "$B"/tests/test_*; do
        [ -x "$t" ] || continue
        run_suite "unit-$(basename "$t")" $VG "$t"
    done
fi
if want fuzz; then
    for t in "$B"/fuzz/replay_*; do
        [ -x "$t" ] || continue
        name=${t##*/replay_}
        run_suite "fuzz-corpus-$name" $VG "$t" "tests/fuzz/corpus/$name"
    done
fi
if want sdk; then
    for t in "$B"/tests/sdk_test_*; do
        [ -x "$t" ] || continue
        run_suite "sdk-$(basename "$t")" $VG "$t"
    done
fi
if want integration && ls tests/integration/*.test.mjs >/dev/null 2>&1; then
    run_suite integration node --test --test-concurrency=2 --test-timeout=300000 --test-reporter=tap tests/integration/
fi
if want pg; then
    RTM_TEST_DB=postgres run_suite integration-pg node --test --test-concurrency=2 --test-timeout=300000 \
        --test-reporter=tap tests/integration/mint_api.test.mjs tests/integration/broker_auth.test.mjs \
        tests/integration/broker_sessions.test.mjs tests/integration/split_roles.test.mjs
fi
if want browser && ls tests/browser/*.test.mjs >/dev/null 2>&1; then
    run_suite browser node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=tap tests/browser/
fi
rm -rf "$log"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
