#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a short time each.
# Usage: scripts/fuzz.sh [duration]   (default 10s)
set -euo pipefail
dur=${1:-10s}
cd "$(dirname "$0")/.."
fail=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $t ($dur)"
    go test -run '^$' -fuzz "^${t}\$" -fuzztime "$dur" "$pkg" || fail=1
  done
done
exit $fail
