#!/usr/bin/env bash
# Validates the deployment files without a Docker engine or a cluster: the compose file
# against the Compose specification, the Kubernetes manifests against the API schemas
# (both validators ship their schemas, so this works offline).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v check-jsonschema >/dev/null || ! command -v kubernetes-validate >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check check-jsonschema kubernetes-validate >&2
fi
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
kubernetes-validate --quiet deploy/k8s/*.yaml
python3 -m json.tool deploy/grafana/feed-pipeline.json >/dev/null
echo "deploy files valid"
