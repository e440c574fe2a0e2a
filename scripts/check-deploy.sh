#!/usr/bin/env bash
# Validates the deployment files without a Docker engine or a cluster: the compose file
# against the Compose specification, the Kubernetes manifests against the API schemas
# (both validators ship their schemas, so this works offline); and docs/openapi.json
# against the OpenAPI specification (a unit test keeps it equal to what the API serves).
set -euo pipefail
cd "$(dirname "$0")/.."
tools=(check-jsonschema kubernetes-validate openapi-spec-validator)
for tool in "${tools[@]}"; do
    if ! command -v "$tool" >/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check "${tools[@]}" >&2
        break
    fi
done
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
kubernetes-validate --quiet deploy/k8s/*.yaml
python3 -m json.tool deploy/grafana/feed-pipeline.json >/dev/null
openapi-spec-validator docs/openapi.json
echo "deploy files and OpenAPI document valid"
