#!/usr/bin/env bash
# Parity and load checks of the Triton backend against a real Triton server
# (docs/triton.md). Runs the Go tests behind the `integration` build tag in
# ./triton with KRONOS_TRITON_URL set.
#
#   scripts/triton-check.sh HOST:8001        check a running Triton (gRPC port)
#   KRONOS_TRITON_URL=HOST:8001 scripts/triton-check.sh
#   scripts/triton-check.sh --self-test      start the fake Triton (triton/internal/tritonfake,
#                                            real graphs on ONNX Runtime) and check it: proves the
#                                            checks themselves work without a GPU host
#
# Optional environment (see triton/integration_test.go):
#   KRONOS_MODEL (default kronos-nano), KRONOS_TRITON_TOLERANT=1 (FP16 engines: log id
#   mismatches instead of failing), KRONOS_TRITON_LOAD_REQUESTS (64),
#   KRONOS_TRITON_LOAD_CONCURRENCY (8), KRONOS_TRITON_METRICS_URL (http://HOST:8002/metrics,
#   reports the average dynamic batch), KRONOS_TRITON_HOTSWAP=1 (reload models under load;
#   needs --model-control-mode=explicit), KRONOS_TRITON_CHECK_TIMEOUT (go test -timeout, 20m).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
timeout=${KRONOS_TRITON_CHECK_TIMEOUT:-20m}
fake_pid=""
cleanup() {
	if [[ -n "$fake_pid" ]]; then
		kill "$fake_pid" 2>/dev/null || true
		wait "$fake_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

case "${1:-}" in
-h | --help)
	sed -n '2,20p' "$0"
	exit 0
	;;
--self-test)
	addr=${KRONOS_TRITON_FAKE_ADDR:-127.0.0.1:18001}
	bin=$(mktemp -d)/tritonfake
	"$GO" build -o "$bin" ./triton/internal/tritonfake
	"$bin" -addr "$addr" -repo model_repository -model "${KRONOS_MODEL:-kronos-nano}" &
	fake_pid=$!
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then break; fi
		kill -0 "$fake_pid" 2>/dev/null || { echo "triton-check: the fake Triton exited" >&2; exit 1; }
		sleep 0.1
	done
	export KRONOS_TRITON_URL=$addr
	export KRONOS_TRITON_HOTSWAP=${KRONOS_TRITON_HOTSWAP:-1}
	export KRONOS_TRITON_LOAD_REQUESTS=${KRONOS_TRITON_LOAD_REQUESTS:-16}
	export KRONOS_TRITON_LOAD_CONCURRENCY=${KRONOS_TRITON_LOAD_CONCURRENCY:-4}
	;;
"") ;;
*) export KRONOS_TRITON_URL=$1 ;;
esac

if [[ -z "${KRONOS_TRITON_URL:-}" ]]; then
	echo "triton-check: give a Triton gRPC address (HOST:8001), set KRONOS_TRITON_URL, or use --self-test" >&2
	exit 2
fi
echo "triton-check: Triton at $KRONOS_TRITON_URL, model ${KRONOS_MODEL:-kronos-nano}"
"$GO" test -tags integration -count=1 -timeout "$timeout" -run 'TestRealTriton' -v ./triton/
