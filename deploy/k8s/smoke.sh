#!/usr/bin/env bash
# Smoke test of deploy/k8s on a cluster with GPU nodes (NVIDIA device plugin), run after
#   kubectl -n "$NS" create secret generic moeserve-auth --from-file=api-keys=./api-keys
#   kubectl -n "$NS" apply -k deploy/k8s        # and the model in the moeserve-model claim
# Checks: the rollout completes (startup + readiness probes pass), every pod answers
# grpc.health.v1 and a completion with the API key (refuses without), /health and /metrics through
# the Service, and a deleted pod terminates within terminationGracePeriodSeconds and is replaced.
# For the base deployment (overlays/tls needs moeserve-cli --tls-ca ... in the exec calls).
#   NS=moeserve API_KEY_FILE=./api-keys deploy/k8s/smoke.sh
set -euo pipefail
ns=${NS:-moeserve}
key_file=${API_KEY_FILE:?set API_KEY_FILE to the file given to the moeserve-auth Secret}
k() { kubectl -n "$ns" "$@"; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

k rollout status deployment/moeserve --timeout=45m || fail "rollout"
key=$(grep -v '^#' "$key_file" | head -1)
pods=$(k get pods -l app.kubernetes.io/name=moeserve -o jsonpath='{.items[*].metadata.name}')
for pod in $pods; do
  k exec "$pod" -- moeserve-cli --health | grep -qx SERVING || fail "$pod: health"
  out=$(k exec "$pod" -- moeserve-cli --api-key "$key" --max-tokens 8 "Once upon a time")
  [[ -n "$out" ]] || fail "$pod: empty completion"
  k exec "$pod" -- moeserve-cli --model-info >/dev/null 2>&1 && fail "$pod: API answered without a key"
  echo "smoke: $pod OK: $out" >&2
done

# Through the Service (one connection, one replica): the HTTP port and the metrics port.
k port-forward service/moeserve 15051:50051 18000:8000 19400:9400 >/dev/null 2>&1 &
pf=$!
trap 'kill $pf 2>/dev/null || true' EXIT
sleep 3
curl -fsS http://127.0.0.1:19400/health | grep -qx SERVING || fail "/health via Service"
curl -fsS http://127.0.0.1:19400/metrics | grep -q '^moeserve_requests_waiting ' || fail "/metrics"
curl -fsS http://127.0.0.1:18000/health | grep -qx SERVING || fail "/health on the HTTP port"
# What the inference gateway's endpoint picker scrapes from the HTTP port.
curl -fsS http://127.0.0.1:18000/metrics | grep -q '^moeserve_cache_config_info{block_size=' \
  || fail "/metrics on the HTTP port: no cache config info"

# Drain: delete one pod; it must leave the endpoints, then exit 0.
victim=${pods%% *}
grace=$(k get pod "$victim" -o jsonpath='{.spec.terminationGracePeriodSeconds}')
start=$(date +%s)
k delete pod "$victim" --wait=false
k wait --for=delete "pod/$victim" --timeout="$((grace + 30))s" || fail "$victim did not terminate"
echo "smoke: $victim terminated after $(( $(date +%s) - start ))s (grace ${grace}s)" >&2
k get events --field-selector "involvedObject.name=$victim" -o custom-columns=REASON:.reason,MSG:.message \
  | grep -i -E 'kill|exit' >&2 || true
k rollout status deployment/moeserve --timeout=45m || fail "replacement pod"
echo "smoke: OK" >&2
