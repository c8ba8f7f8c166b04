"""examples/kubernetes validates against the Kubernetes schemas and wires the watcher up
as the README describes; examples/systemd holds a Type=notify unit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from reconciler.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "examples" / "kubernetes"
UNIT = ROOT / "examples" / "systemd" / "reconciler-watch.service"
#: the oldest Kubernetes still common in fleets, and the newest schemas shipped
VERSIONS = ("1.29", kubernetes_validate.latest_version())


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(KUBE.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append((f"{path.name}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}", doc))
    return docs


DOCS = documents()


def one(kind: str) -> dict[str, Any]:
    found = [d for _, d in DOCS if d["kind"] == kind]
    assert len(found) == 1, f"{kind}: {len(found)} documents"
    return found[0]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[n for n, _ in DOCS])
def test_every_document_validates(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)  # raises on an error or unknown field


def test_the_validation_catches_mistakes() -> None:
    ds = yaml.safe_load((KUBE / "daemonset.yaml").read_text())
    ds["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, VERSIONS[-1], strict=True)


def test_the_example_has_what_the_fleet_needs() -> None:
    assert {d["kind"] for _, d in DOCS} == {"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"}
    ds = one("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    containers = {c["name"]: c for c in pod["containers"]}
    rec, sync = containers["reconciler"], containers["git-sync"]

    # on every GPU node, past the GPU taints
    assert any("gpu" in k for k in pod.get("nodeSelector", {})) or "nodeAffinity" in pod.get("affinity", {})
    assert any(t["key"] == "nvidia.com/gpu" and t["operator"] == "Exists" for t in pod["tolerations"])
    assert pod["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]

    # reconciler watch, listening where the probes and the scrape annotations look
    args = rec.get("command", []) + rec["args"]
    assert "watch" in args and "--locked" in args
    listen = next(a for a in args if a.startswith("--listen="))
    port = int(listen.rsplit(":", 1)[1])
    assert any(a.startswith("--status-file=/models/") for a in args)
    assert {p["name"]: p["containerPort"] for p in rec["ports"]}["metrics"] == port
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert rec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert rec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}

    # a clean SIGTERM, no preStop
    assert pod["terminationGracePeriodSeconds"] == 30
    assert all("preStop" not in c.get("lifecycle", {}) for c in pod["containers"])
    for c in pod["containers"]:
        assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]

    # git-sync v4 publishing a link on an emptyDir both containers mount
    assert re.fullmatch(r"registry\.k8s\.io/git-sync/git-sync:v4\.\d+\.\d+", sync["image"])
    sync_args = dict(a.split("=", 1) for a in sync["args"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    shared = [m for m in sync["volumeMounts"] if m["mountPath"] == sync_args["--root"]]
    assert shared and "emptyDir" in volumes[shared[0]["name"]]
    assert any(m["name"] == shared[0]["name"] for m in rec["volumeMounts"])
    link = f"{sync_args['--root']}/{sync_args['--link']}"

    # the models dir on the node, and the settings from the ConfigMap
    models = next(m for m in rec["volumeMounts"] if "hostPath" in volumes[m["name"]])
    config_mount = next(m for m in rec["volumeMounts"] if "configMap" in volumes[m["name"]])
    assert volumes[config_mount["name"]]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    config = next(a.split("=", 1)[1] for a in args if a.startswith("--config="))
    assert Path(config).parent == Path(config_mount["mountPath"])
    settings = yaml.safe_load(one("ConfigMap")["data"][Path(config).name])
    assert settings["models_dir"] == models["mountPath"]
    assert settings["manifests"] and all(p.startswith(link + "/") for p in settings["manifests"])
    assert settings["lock"].startswith(link + "/")


def test_the_configmap_holds_valid_settings(tmp_path: Path) -> None:
    path = tmp_path / "reconciler.yaml"
    path.write_text(one("ConfigMap")["data"]["reconciler.yaml"], encoding="utf-8")
    settings = load_settings(path, environ={})  # unknown or badly typed fields raise
    assert str(settings.models_dir) == "/models"


# --- systemd --------------------------------------------------------------------------

def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: sections of keys, each with its values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not a unit line: {raw!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(" ".join(value.split()))
    return sections


def test_the_systemd_unit() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["Restart"] == ["on-failure"]
    assert float(service["WatchdogSec"][0]) > 0
    assert service["TimeoutStartSec"] == ["infinity"]  # READY=1 waits for the first reconcile
    (start,) = service["ExecStart"]
    assert re.search(r"reconciler .*\bwatch\b", start)
    assert "--listen 127.0.0.1:9464" in start and "--status-file " in start
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "network-online.target" in unit["Unit"]["After"][0]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
