#!/usr/bin/env bash
# Validates the deployment files without a Docker engine or a cluster: the compose file
# against the Compose specification; the Kubernetes overlays rendered by kustomize
# (`kubectl kustomize`) against the API schemas and against what the deployment promises
# (scripts/check_k8s.py: restricted Pod Security, labels, pinned images, no secrets,
# probes, budgets); the Prometheus alerting rules with promtool, checked and unit-tested;
# and docs/openapi.json against the OpenAPI specification (a unit test keeps it equal to
# what the API serves). The validators ship their schemas, so this works offline.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/infra.sh
tools=(check-jsonschema kubernetes-validate openapi-spec-validator)
for tool in "${tools[@]}"; do
    if ! command -v "$tool" >/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check "${tools[@]}" >&2
        break
    fi
done
command -v promtool >/dev/null || apt_install --no-install-recommends prometheus
command -v kubectl >/dev/null || apt_install --no-install-recommends kubernetes-client
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for kustomization in deploy/k8s/overlays/* deploy/k8s/migrate; do
    out="$rendered/$(basename "$kustomization").yaml"
    kubectl kustomize "$kustomization" >"$out"
    kubernetes-validate --quiet "$out"
done
python3 scripts/check_k8s.py "$rendered"/*.yaml
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml
python3 -m json.tool deploy/grafana/feed-pipeline.json >/dev/null
openapi-spec-validator docs/openapi.json
echo "deploy files, alerting rules and OpenAPI document valid"
