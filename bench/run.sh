#!/bin/bash
# make bench: runs every bench/*.sh in name order (each prints its own
# figures) and ends with the list of scripts that failed, if any. Figures
# only, no thresholds: speed is judged by reading them, never by a test.
set -u
cd "$(dirname "$0")/.."
export RTM_BUILD=${RTM_BUILD:-build}
failed=()
for s in bench/*.sh; do
    [ "$(basename "$s")" = run.sh ] && continue
    echo "=== $(basename "$s" .sh)"
    if ! bash "$s"; then failed+=("$(basename "$s")"); fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: failed: ${failed[*]}"
    exit 1
fi
