#!/usr/bin/env bash
# End-to-end smoke test of deploy/compose on a machine with Docker (and, unless --cpu, a GPU with
# the NVIDIA container toolkit). Builds and starts the stack, then checks: the container turns
# healthy (HEALTHCHECK = grpc.health.v1), a completion streams back, /health and /metrics answer,
# Prometheus scrapes the server, Grafana has the dashboard, and `docker compose stop` drains and
# exits 0. Leaves the stack down unless KEEP=1.
#   deploy/compose/smoke.sh [--cpu]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
files=(-f compose.yaml)
if [[ "${1:-}" == "--cpu" ]]; then files+=(-f compose.cpu.yaml); fi
dc() { docker compose "${files[@]}" "$@"; }
fail() { echo "smoke: FAIL: $*" >&2; dc logs --tail 50 moeserve >&2 || true; exit 1; }
cleanup() { if [[ "${KEEP:-0}" != "1" ]]; then dc down -v >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

dc up -d --build
cid=$(dc ps -q moeserve)
echo "smoke: waiting for the server to turn healthy" >&2
for _ in $(seq 1 120); do
  state=$(docker inspect -f '{{.State.Health.Status}}' "$cid")
  [[ "$state" == healthy ]] && break
  [[ "$(docker inspect -f '{{.State.Running}}' "$cid")" == true ]] || fail "server exited"
  sleep 5
done
[[ "$state" == healthy ]] || fail "not healthy after 10 minutes ($state)"

dc exec -T moeserve moeserve-cli --health | grep -qx SERVING || fail "grpc health"
out=$(dc exec -T moeserve moeserve-cli --max-tokens 16 --usage "Once upon a time")
[[ -n "$out" ]] || fail "empty completion"
echo "smoke: completion: $out" >&2
curl -fsS http://127.0.0.1:9400/health | grep -qx SERVING || fail "/health"
curl -fsS http://127.0.0.1:8000/health | grep -qx SERVING || fail "/health on the HTTP port"
curl -fsS http://127.0.0.1:9400/metrics | grep -q '^moeserve_generation_tokens_total [1-9]' \
  || fail "/metrics does not count the tokens"

echo "smoke: waiting for Prometheus to scrape" >&2
for _ in $(seq 1 30); do
  if curl -fsS 'http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22moeserve%22%7D' \
      | grep -q '"value":\[[0-9.]*,"1"\]'; then scraped=1; break; fi
  sleep 2
done
[[ "${scraped:-0}" == 1 ]] || fail "Prometheus does not scrape moeserve"
curl -fsS 'http://127.0.0.1:9090/api/v1/query?query=moeserve_kv_cache_blocks_total' \
  | grep -q '"result":\[{' || fail "no moeserve_kv_cache_blocks_total in Prometheus"
for _ in $(seq 1 30); do
  if curl -fsS http://127.0.0.1:3000/api/dashboards/uid/moeserve >/dev/null 2>&1; then dash=1; break; fi
  sleep 2
done
[[ "${dash:-0}" == 1 ]] || fail "Grafana has no moeserve dashboard"

echo "smoke: stopping (SIGTERM, drain)" >&2
dc stop moeserve
code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
[[ "$code" == 0 ]] || fail "exit code $code after SIGTERM"
echo "smoke: OK" >&2
