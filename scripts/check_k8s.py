"""Checks rendered Kubernetes manifests (files given as arguments) for what the
deployment promises beyond schema validity: the "restricted" Pod Security Standard,
recommended labels, pinned images, no secrets, and the probes and budgets operators
rely on. Exits non-zero naming every violation."""

import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "Job"}


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def check(docs):
    problems = []
    by_kind = {}
    for obj in docs:
        kind, name = obj["kind"], obj["metadata"]["name"]
        by_kind.setdefault(kind, []).append(obj)
        where = f"{kind}/{name}"
        labels = obj["metadata"].get("labels", {})
        for label in ("app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"):
            if label not in labels:
                problems.append(f"{where}: label {label} missing")
        if kind == "Secret":
            problems.append(f"{where}: secrets do not belong in the manifests")
        if kind not in WORKLOADS:
            continue
        if "app.kubernetes.io/component" not in labels:
            problems.append(f"{where}: label app.kubernetes.io/component missing")
        spec = pod_spec(obj)
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile is not RuntimeDefault")
        for container in spec.get("initContainers", []) + spec["containers"]:
            c = f"{where} container {container['name']}"
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{c}: allowPrivilegeEscalation is not false")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.append(f"{c}: capabilities do not drop ALL")
            image = container["image"]
            if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
                problems.append(f"{c}: image {image} is not pinned to a version or digest")
            if "memory" not in container.get("resources", {}).get("limits", {}):
                problems.append(f"{c}: no memory limit")
            if "requests" not in container.get("resources", {}):
                problems.append(f"{c}: no resource requests")
            if kind != "Job":
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if probe not in container:
                        problems.append(f"{c}: no {probe}")
    for obj in by_kind.get("Deployment", []) + by_kind.get("StatefulSet", []):
        name = obj["metadata"]["name"]
        if not any(p["metadata"]["name"] == name for p in by_kind.get("PodDisruptionBudget", [])):
            problems.append(f"{obj['kind']}/{name}: no PodDisruptionBudget")
    api = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == "feed-api"]
    if not api or pod_spec(api[0])["containers"][0]["readinessProbe"]["httpGet"]["path"] != "/readyz":
        problems.append("Deployment/feed-api: readiness must be /readyz (process-only)")
    if api and "preStop" not in pod_spec(api[0])["containers"][0].get("lifecycle", {}):
        problems.append("Deployment/feed-api: no preStop delay (clients would be sent to a pod that stopped accepting)")
    if not by_kind.get("HorizontalPodAutoscaler"):
        problems.append("no HorizontalPodAutoscaler for the API")
    if not by_kind.get("NetworkPolicy"):
        problems.append("no NetworkPolicy")
    for config in by_kind.get("ConfigMap", []):
        if config["data"].get("RUN_MIGRATIONS") != "false":
            problems.append(f"ConfigMap/{config['metadata']['name']}: RUN_MIGRATIONS must be false (the migrate Job runs them)")
    return problems


def main():
    problems = []
    for path in sys.argv[1:]:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if any(d["kind"] == "Job" and d["metadata"]["name"].startswith("feed-migrate") for d in docs):
            # The migrate kustomization: one Job, no services.
            problems += [p for p in check(docs) if "readiness must be" not in p and "HorizontalPodAutoscaler" not in p and "NetworkPolicy" not in p]
        else:
            problems += check(docs)
        print(f"{path}: {len(docs)} objects checked")
    for problem in problems:
        print("problem:", problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
