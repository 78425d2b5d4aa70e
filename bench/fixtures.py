#!/usr/bin/env python3
"""fixtures.py: the benchmark's request and response bodies, generated the
same way on every run (no randomness, no clock):

  snapshot.json  the flow server's snapshot of a two-region deployment
                 (fsn1, hel1-1): 120 nodes (per region: the region, 7 phases,
                 52 components) and their relationships, about 34 KB
  events.json    one upsert-nodes message of exactly 256 KiB, the body
                 every events request POSTs

    bench/fixtures.py OUTDIR
"""
import json
import os
import sys

FLOW = "dep-bench-7f3a"
REGIONS = ["fsn1", "hel1-1"]
T0 = 1732780800000  # 2024-11-28T08:00:00Z, in ms
SNAPSHOT_TARGET = 34 * 1000  # bytes, within 1 %
EVENTS_SIZE = 256 * 1024

# phase -> component names (52 in all)
PHASES = [
    ("network", ["hcloud-ccm", "cilium", "coredns", "envoy-gateway", "external-dns", "metallb", "multus"]),
    ("security", ["cert-manager", "trust-manager", "openbao", "external-secrets", "kyverno", "falco", "trivy-operator",
                  "oauth2-proxy"]),
    ("storage", ["hcloud-csi", "longhorn", "minio", "velero", "snapshot-controller", "local-path"]),
    ("data", ["cnpg-operator", "postgres", "valkey", "nats", "kafka", "clickhouse", "opensearch"]),
    ("platform", ["argocd", "keycloak", "gitea", "harbor", "tekton", "crossplane", "backstage", "knative"]),
    ("observability", ["prometheus-operator", "prometheus", "alertmanager", "grafana", "loki", "tempo", "otel-collector",
                       "vector"]),
    ("apps", ["console", "api-gateway", "billing", "notifications", "search", "reports", "scheduler", "webhooks"]),
]
FAMILIES = ["helm-release", "operator", "database", "kustomization"]
STATUSES = ["ready", "ready", "ready", "installing", "pending"]


def _nodes_and_rels():
    nodes, rels = [], []
    n = 0
    for region in REGIONS:
        rid = f"{region}"
        nodes.append({"id": rid, "flowId": FLOW, "label": f"region {region}", "status": "running", "family": "region",
                      "region": region, "startedAt": T0})
        previous_phase = None
        for p, (phase, components) in enumerate(PHASES):
            pid = f"{region}/{phase}"
            nodes.append({"id": pid, "flowId": FLOW, "label": phase, "status": "running", "family": "phase",
                          "region": region, "startedAt": T0 + p * 60000})
            rels.append({"fromId": rid, "toId": pid, "type": "contains"})
            if previous_phase:
                rels.append({"fromId": previous_phase, "toId": pid, "type": "finish-to-start",
                             "condition": "on-success"})
            previous_phase = pid
            previous = None
            for c, comp in enumerate(components):
                n += 1
                cid = f"{region}/{comp}"
                status = STATUSES[n % len(STATUSES)]
                node = {"id": cid, "flowId": FLOW, "label": comp, "status": status,
                        "family": FAMILIES[n % len(FAMILIES)], "region": region,
                        "startedAt": T0 + p * 60000 + c * 7000}
                if status == "ready":
                    node["endedAt"] = node["startedAt"] + 20000 + (n * 137) % 40000
                nodes.append(node)
                rels.append({"fromId": pid, "toId": cid, "type": "contains"})
                if previous and c % 2 == 1:
                    rels.append({"fromId": previous, "toId": cid, "type": "finish-to-start", "lag": 5})
                previous = cid
    # Once across regions: hel1-1 reads its secrets from fsn1's openbao.
    rels.append({"fromId": "fsn1/openbao", "toId": "hel1-1/external-secrets", "type": "finish-to-start",
                 "fromFlowId": FLOW, "toFlowId": FLOW, "condition": "on-success"})
    return nodes, rels


def snapshot_bytes():
    nodes, rels = _nodes_and_rels()
    assert len(nodes) == 120, len(nodes)
    flow = {"id": FLOW, "status": "running", "startedAt": T0, "definitionId": "sovereign-bootstrap-v3",
            "triggeredBy": [{"flowId": "dep-bench-parent", "when": "on-success"}],
            "meta": {"sovereign": "bench.openova.example", "regions": REGIONS}}
    # Meta on components until the document reaches its size: chart,
    # version and namespace, as a real deployment carries them.
    k = 0
    while True:
        doc = {"type": "snapshot", "flow": flow, "nodes": nodes, "relationships": rels}
        text = json.dumps(doc, separators=(",", ":"))
        if len(text) >= SNAPSHOT_TARGET or k >= len(nodes):
            break
        node = nodes[k]
        k += 1
        if node["family"] in ("region", "phase"):
            continue
        node["meta"] = {"chart": node["label"], "version": f"1.{k % 17}.{k % 5}",
                        "namespace": f"{node['label'][:12]}-system"}
    return text.encode()


def events_bytes():
    """An upsert-nodes message padded with node entries, then spaces (JSON
    whitespace), to exactly EVENTS_SIZE bytes."""
    head, tail = '{"type":"upsert-nodes","nodes":[', "]}"
    parts, size, i = [], len(head) + len(tail), 0
    while True:
        i += 1
        region = REGIONS[i % 2]
        node = json.dumps({"id": f"{region}/job-{i:05d}", "flowId": FLOW, "label": f"job {i}",
                           "status": "installing", "family": "job", "region": region, "startedAt": T0 + i},
                          separators=(",", ":"))
        if size + len(node) + 1 > EVENTS_SIZE:
            break
        parts.append(node)
        size += len(node) + 1
    text = head + ",".join(parts) + tail
    return (text + " " * (EVENTS_SIZE - len(text))).encode()


def write(outdir):
    os.makedirs(outdir, exist_ok=True)
    paths = {}
    for name, data in (("snapshot.json", snapshot_bytes()), ("events.json", events_bytes())):
        path = os.path.join(outdir, name)
        with open(path, "wb") as f:
            f.write(data)
        paths[name] = path
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fixtures.py OUTDIR")
    for name, path in write(sys.argv[1]).items():
        print(f"{path}: {os.path.getsize(path)} bytes")
