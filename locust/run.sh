#!/usr/bin/env bash
# Runs one load-test scenario headless against a kronos-gateway and writes Locust's CSV stats.
#
#   locust/run.sh SCENARIO URL [DURATION]
#
#   SCENARIO  steady | stress | spike | endurance   (the seed's four scenarios, locust/kronos_shapes.py)
#   URL       base URL of the gateway, e.g. http://127.0.0.1:8000
#   DURATION  optional: 90, 90s, 5m, 1h30m ... (default: the scenario's own, 5m/10m/5m/30m);
#             every phase of the shape scales with it.
#
# Results go to ${RESULTS_DIR:-locust/results}/<scenario>-<UTC time>/: <scenario>_stats.csv,
# <scenario>_stats_history.csv, <scenario>_failures.csv, <scenario>_exceptions.csv, report.html
# and locust.log. Exit status: 0 when requests were sent and none failed; 1 when any request
# failed or none was sent; 2 on bad usage; Locust's own status otherwise. A hard timeout
# (duration + 2 minutes) stops the run even if Locust hangs.
# Tuning variables (KRONOS_LOAD_*): see the docstring of locust/locustfile.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[[ $# -ge 2 && $# -le 3 ]] || usage
scenario="$1" url="$2" duration="${3:-}"

case "$scenario" in
  steady) default_secs=300 ;;
  stress) default_secs=600 ;;
  spike) default_secs=300 ;;
  endurance) default_secs=1800 ;;
  *) echo "run.sh: unknown scenario '$scenario'" >&2; usage ;;
esac
[[ "$url" =~ ^https?://[^/]+ ]] || { echo "run.sh: URL must start with http:// or https://, got '$url'" >&2; usage; }

# to_seconds 90 | 90s | 5m | 1h30m | 1h2m3s -> seconds
to_seconds() {
  local s="$1" total=0
  if [[ "$s" =~ ^[0-9]+$ ]]; then echo "$s"; return; fi
  [[ "$s" =~ ^([0-9]+h)?([0-9]+m)?([0-9]+s)?$ && -n "$s" ]] || return 1
  [[ "$s" =~ ([0-9]+)h ]] && total=$((total + BASH_REMATCH[1] * 3600))
  [[ "$s" =~ ([0-9]+)m ]] && total=$((total + BASH_REMATCH[1] * 60))
  [[ "$s" =~ ([0-9]+)s ]] && total=$((total + BASH_REMATCH[1]))
  echo "$total"
}
secs="$default_secs"
if [[ -n "$duration" ]]; then
  secs="$(to_seconds "$duration")" || { echo "run.sh: bad DURATION '$duration'" >&2; usage; }
  [[ "$secs" -gt 0 ]] || { echo "run.sh: DURATION must be positive" >&2; usage; }
fi

locust_bin="${LOCUST:-locust}"
command -v "$locust_bin" >/dev/null || { echo "run.sh: '$locust_bin' not found (apt-get install python3-locust, or pip install locust)" >&2; exit 2; }

results="${RESULTS_DIR:-$here/results}/${scenario}-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"
prefix="$results/$scenario"

echo "run.sh: $scenario against $url for ${secs}s; results in $results"
rc=0
SCENARIO="$scenario" KRONOS_LOAD_DURATION="$secs" \
  timeout --signal=INT --kill-after=30 "$((secs + 120))" \
  "$locust_bin" -f "$here/locustfile.py" --headless --host "$url" \
    --csv "$prefix" --csv-full-history --html "$results/report.html" \
    --logfile "$results/locust.log" --loglevel INFO --only-summary \
    --stop-timeout 30 --exit-code-on-error 1 || rc=$?

stats="${prefix}_stats.csv"
if [[ ! -s "$stats" ]]; then
  echo "run.sh: no statistics written ($stats); Locust exit status $rc; see $results/locust.log" >&2
  exit $(( rc == 0 ? 1 : rc ))
fi
# The "Aggregated" row of the stats CSV: total requests and failures.
read -r requests failures < <(awk -F, '
  NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); col[$i] = i }; next }
  { name = $col["Name"]; gsub(/"/, "", name) }
  name == "Aggregated" { print $col["Request Count"], $col["Failure Count"]; found = 1 }
  END { if (!found) print "0 0" }' "$stats")
echo "run.sh: $requests requests, $failures failed (Locust exit status $rc)"
if [[ "$failures" -gt 0 ]]; then
  echo "run.sh: failures:" >&2
  cat "${prefix}_failures.csv" >&2 || true
  exit 1
fi
if [[ "$requests" -eq 0 ]]; then
  echo "run.sh: no request was sent" >&2
  exit 1
fi
if [[ "$rc" -eq 124 || "$rc" -eq 137 ]]; then
  echo "run.sh: Locust did not stop by itself and was killed" >&2
  exit 1
fi
exit "$rc"
