"""Writes the Kustomize base (deploy/k8s/base/) from the one list of programs.

    python deploy/k8s/generate.py [--check]

The base has one file per program of deploy/Procfile that runs in production
(the six services, the gateway, the web front end; ``mail`` and ``psp`` are the
development SMTP sink and payment-provider simulator and are not deployed), with
the same command line as the Procfile. A service's KEDA triggers are its RPC
queue and every event-handler queue it consumes, found in its code exactly as
``python -m kc_common.topology`` finds them. Edit this script, not the YAML it
writes; tests/test_deploy_manifests.py fails when the files are out of date
(``--check`` does the same here). The production overlay and the secret
templates are written by hand.
"""
import argparse
import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
PROCFILE = ROOT / "deploy" / "Procfile"

IMAGE = "kundencenter"          # the one image (deploy/Dockerfile); the overlay sets registry and tag
PART_OF = "kundencenter"
METRICS_PORT = 9100             # every process serves Prometheus /metrics here (<NAME>_METRICS_ADDRESS)
DEV_ONLY = {"mail", "psp"}      # development stand-ins, not deployed
QUEUE_LENGTH_TARGET = "20"      # KEDA: one more replica per 20 messages waiting in a queue

# Seconds a pod has after SIGTERM: nameko stops consuming, then waits for the workers in
# hand; the longest is a document rendering (RENDER_TIMEOUT 120 s); requests are bounded
# by RPC_TIMEOUT (10 s).
GRACE = {"documents": 150}
DEFAULT_GRACE = 60
RESOURCES = {
    "default": {"requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"}},
    "documents": {"requests": {"cpu": "250m", "memory": "512Mi"},
                  "limits": {"cpu": "2", "memory": "1536Mi"}},
    "gateway": {"requests": {"cpu": "200m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"}},
    "web": {"requests": {"cpu": "100m", "memory": "192Mi"},
            "limits": {"cpu": "1", "memory": "384Mi"}},
}
# Environment variables from Secrets (deploy/k8s/secrets/secrets.yaml holds the templates):
# (variable, secret, key). Database URLs come from the Secret CloudNativePG makes per cluster.
SECRET_ENV = {
    "all": [("AMQP_URI", "kc-amqp", "AMQP_URI")],
    "mailing": [("SMTP_USER", "kc-smtp", "SMTP_USER"), ("SMTP_PASSWORD", "kc-smtp", "SMTP_PASSWORD")],
    "identity": [("PHONE_PASSWORD_KEYS", "kc-identity", "PHONE_PASSWORD_KEYS")],
    "catalog": [("CATALOG_LOGIN_LINK_SECRET", "kc-catalog", "CATALOG_LOGIN_LINK_SECRET")],
    "billing": [("PSP_API_KEY", "kc-billing", "PSP_API_KEY"),
                ("PSP_WEBHOOK_SECRET", "kc-billing", "PSP_WEBHOOK_SECRET")],
    "documents": [("AWS_ACCESS_KEY_ID", "kc-documents", "AWS_ACCESS_KEY_ID"),
                  ("AWS_SECRET_ACCESS_KEY", "kc-documents", "AWS_SECRET_ACCESS_KEY")],
    "support": [("SUPPORT_INBOUND_SECRET", "kc-support", "SUPPORT_INBOUND_SECRET")],
    "web": [("WEB_SECRET_KEY", "kc-web", "WEB_SECRET_KEY")],
}
# Plain per-program settings (the shared ones are in the ConfigMap kc-config).
EXTRA_ENV = {
    "documents": [("DOCUMENTS_RENDER_WORKERS", "2"), ("DOCUMENTS_STORAGE", "s3")],
    "support": [("SUPPORT_ATTACHMENT_DIR", "/data/support-attachments")],
    "gateway": [("GATEWAY_ADDRESS", "0.0.0.0:8000")],
    "web": [("WEB_ADDRESS", "0.0.0.0:8080"), ("GATEWAY_URL", "http://kc-gateway:8000")],
}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # shared dicts are written out, never as YAML anchors
        return True


def procfile(path=PROCFILE):
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            yield name.strip(), command.strip()


def labels(name, component):
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": PART_OF}


def selector(name):
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def meta(name, component, **extra):
    return {"name": f"kc-{name}", "labels": labels(name, component), **extra}


def secret_env(var, secret, key, optional=False):
    ref = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": var, "valueFrom": {"secretKeyRef": ref}}


def env_for(name, service):
    # The web front end talks to the gateway's HTTP API only: no broker credentials.
    env = [] if name == "web" else [secret_env(*item) for item in SECRET_ENV["all"]]
    if service:
        env.append(secret_env(f"{name.upper()}_DATABASE_URL", f"kc-{name}-db-app", "uri"))
        env += [secret_env(*item) for item in SECRET_ENV["mailing"]]
    env += [secret_env(*item) for item in SECRET_ENV.get(name, [])]
    env += [{"name": k, "value": v} for k, v in EXTRA_ENV.get(name, [])]
    # docs/metrics.md: a bare port listens on every interface of the pod.
    env.append({"name": f"{name.upper()}_METRICS_ADDRESS", "value": str(METRICS_PORT)})
    return env


SECURITY = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}}
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"}}
SCRATCH_VOLUMES = [{"name": "tmp", "emptyDir": {}}, {"name": "var", "emptyDir": {}}]
SCRATCH_MOUNTS = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "var", "mountPath": "/app/var"}]


def container(name, command, service, config_path):
    ports = [{"name": "metrics", "containerPort": METRICS_PORT}]
    if name == "gateway":
        ports.insert(0, {"name": "http", "containerPort": 8000})
    if name == "web":
        ports.insert(0, {"name": "http", "containerPort": 8080})
    c = {
        "name": name,
        "image": IMAGE,
        "command": command,
        "envFrom": [{"configMapRef": {"name": "kc-config"}}],
        "env": env_for(name, service),
        "ports": ports,
        "resources": RESOURCES.get(name, RESOURCES["default"]),
        "securityContext": SECURITY,
        "volumeMounts": list(SCRATCH_MOUNTS),
    }
    if name == "web":
        # Local answer, no gateway call: alive and ready whenever the process serves HTTP.
        c["readinessProbe"] = {"httpGet": {"path": "/health", "port": "http"},
                               "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2}
        c["livenessProbe"] = {"httpGet": {"path": "/health", "port": "http"},
                              "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6}
    else:
        # Ready: broker reachable and (services) the database at the migration head.
        c["readinessProbe"] = {"exec": {"command": ["python", "-m", "kc_common.probe", "ready",
                                                    config_path]},
                               "initialDelaySeconds": 5, "periodSeconds": 20, "timeoutSeconds": 15,
                               "failureThreshold": 3}
        # Alive: the process's own green threads answer on its metrics port (independent of
        # the broker and the database, so their outage never restarts healthy pods).
        c["livenessProbe"] = {"httpGet": {"path": "/metrics", "port": "metrics"},
                              "initialDelaySeconds": 10, "periodSeconds": 15, "timeoutSeconds": 5,
                              "failureThreshold": 4}
    if name in ("gateway", "web"):
        # Let the Service drop the pod from its endpoints before SIGTERM arrives.
        c["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    if name == "support":
        c["volumeMounts"].append({"name": "attachments", "mountPath": "/data/support-attachments"})
    return c


def deployment(name, command, service, config_path):
    component = "service" if service else name
    pod_spec = {
        "serviceAccountName": "kc-app",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": GRACE.get(name, DEFAULT_GRACE),
        "securityContext": POD_SECURITY,
        "containers": [container(name, command, service, config_path)],
        "volumes": list(SCRATCH_VOLUMES),
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector(name)}}],
    }
    if name == "support":
        pod_spec["volumes"].append({"name": "attachments", "persistentVolumeClaim": {
            "claimName": "kc-support-attachments"}})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(name, component),
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels(name, component), "annotations": {
                "prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT)}},
                "spec": pod_spec},
        },
    }


def pdb(name, component):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": meta(name, component),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(name)}}}


def migration_job(name, config_path):
    c = {"name": "migrate", "image": IMAGE,
         "command": ["python", "-m", "kc_common.manage", config_path, "migrate"],
         "env": [secret_env(f"{name.upper()}_DATABASE_URL", f"kc-{name}-db-app", "uri")],
         "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                       "limits": {"cpu": "1", "memory": "512Mi"}},
         "securityContext": SECURITY, "volumeMounts": list(SCRATCH_MOUNTS)}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"kc-{name}-migrate", "labels": labels(name, "migration")},
            "spec": {"backoffLimit": 6, "activeDeadlineSeconds": 900, "ttlSecondsAfterFinished": 86400,
                     "template": {"metadata": {"labels": labels(name, "migration")}, "spec": {
                         "restartPolicy": "OnFailure", "serviceAccountName": "kc-app",
                         "automountServiceAccountToken": False, "securityContext": POD_SECURITY,
                         "containers": [c], "volumes": list(SCRATCH_VOLUMES)}}}}


def topology_job():
    c = {"name": "topology", "image": IMAGE,
         "command": ["python", "-m", "kc_common.topology"],
         "env": [secret_env(*SECRET_ENV["all"][0])],
         "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                       "limits": {"cpu": "1", "memory": "512Mi"}},
         "securityContext": SECURITY, "volumeMounts": list(SCRATCH_MOUNTS)}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "kc-topology", "labels": labels("topology", "migration")},
            "spec": {"backoffLimit": 6, "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 86400,
                     "template": {"metadata": {"labels": labels("topology", "migration")}, "spec": {
                         "restartPolicy": "OnFailure", "serviceAccountName": "kc-app",
                         "automountServiceAccountToken": False, "securityContext": POD_SECURITY,
                         "containers": [c], "volumes": list(SCRATCH_VOLUMES)}}}}


def scaled_object(name, queues):
    triggers = [{"type": "rabbitmq", "name": f"q{i}",
                 "metadata": {"protocol": "amqp", "mode": "QueueLength", "value": QUEUE_LENGTH_TARGET,
                              "queueName": queue},
                 "authenticationRef": {"name": "kc-rabbitmq"}} for i, queue in enumerate(queues)]
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": meta(name, "service"),
            "spec": {"scaleTargetRef": {"name": f"kc-{name}"},
                     "minReplicaCount": 2, "maxReplicaCount": 10,
                     "pollingInterval": 15, "cooldownPeriod": 300,
                     "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                         "scaleDown": {"stabilizationWindowSeconds": 300,
                                       "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}},
                     "triggers": triggers}}


def cpu_hpa(name, component, max_replicas):
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": meta(name, component),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"kc-{name}"},
                     "minReplicas": 2, "maxReplicas": max_replicas,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}}


def http_service(name, port):
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, name),
            "spec": {"selector": selector(name), "ports": [
                {"name": "http", "port": port, "targetPort": "http"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}]}}


def postgres_cluster(name):
    return {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": f"kc-{name}-db", "labels": labels(name, "database")},
            "spec": {"instances": 2,
                     "imageName": "ghcr.io/cloudnative-pg/postgresql:16",
                     "primaryUpdateStrategy": "unsupervised",
                     # The app user and database; CloudNativePG writes their URI to the Secret
                     # kc-<name>-db-app (key "uri"), which the service and its Job read.
                     "bootstrap": {"initdb": {"database": name, "owner": name}},
                     "storage": {"size": "5Gi"},
                     "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                   "limits": {"memory": "1Gi"}},
                     "monitoring": {"enablePodMonitor": False}}}


def rabbitmq_cluster():
    return {"apiVersion": "rabbitmq.com/v1beta1", "kind": "RabbitmqCluster",
            "metadata": {"name": "kc-rabbitmq", "labels": labels("rabbitmq", "broker")},
            "spec": {"replicas": 3,
                     "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                   "limits": {"cpu": "2", "memory": "2Gi"}},
                     "persistence": {"storage": "10Gi"},
                     "rabbitmq": {
                         "additionalPlugins": ["rabbitmq_management", "rabbitmq_prometheus"],
                         "additionalConfig": "\n".join([
                             "cluster_partition_handling = pause_minority",
                             # rabbitmq_queue_consumers{queue} etc. per queue (the alert rules use it)
                             "prometheus.return_per_object_metrics = true",
                             "disk_free_limit.relative = 1.0",
                         ]) + "\n"}}}


def configmap():
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kc-config", "labels": labels("config", "config")},
            "data": {"KC_ENV": "production", "LOG_LEVEL": "INFO", "RPC_TIMEOUT": "10",
                     "SMTP_HOST": "smtp.example.invalid", "SMTP_PORT": "587", "SMTP_TLS": "starttls",
                     "MAIL_FROM": "KundenCenter <kundencenter@kundencenter.example>",
                     "PSP_RETURN_URL": "https://kundencenter.example/zahlung",
                     "TRUSTED_PROXIES": "10.0.0.0/8",
                     "DOCUMENTS_S3_BUCKET": "kundencenter-documents"}}


def keda_auth():
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "kc-rabbitmq", "labels": labels("rabbitmq", "broker")},
            "spec": {"secretTargetRef": [{"parameter": "host", "name": "kc-amqp", "key": "AMQP_URI"}]}}


def misc():
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "kc-app", "labels": labels("app", "identity")},
         "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "kc-support-attachments", "labels": labels("support", "storage")},
         "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "20Gi"}}}},
    ]


def service_queues(name, module_class):
    """The RPC queue and every event-handler queue of a service class."""
    from kc_common.events import queue_name, service_event_handlers
    from kc_common.topology import load_services
    (cls,) = [c for c in load_services() if f"{c.__module__}:{c.__name__}" == module_class]
    return [f"rpc-{cls.name}"] + sorted(queue_name(source, event_type, cls.name, method)
                                        for source, event_type, method in service_event_handlers(cls))


def render():
    """{file name: list of objects} of the base."""
    files = {"platform.yaml": [configmap(), *misc(), keda_auth(), rabbitmq_cluster()],
             "topology-job.yaml": [topology_job()]}
    from kc_common.services import SERVICES, class_path
    service_lines = [class_path(name) for name in SERVICES]
    for name, command in procfile():
        if name in DEV_ONLY:
            continue
        argv = shlex.split(command)
        if argv[:2] == ["nameko", "run"]:
            config_path = argv[argv.index("--config") + 1]
            module_class = argv[-1]
            service = module_class in service_lines
        else:  # the web front end: address and gateway come from the environment
            argv, config_path, service = ["python", "-m", "kc_web"], None, False
        objs = [deployment(name, argv, service, config_path)]
        if service:
            objs += [pdb(name, "service"), scaled_object(name, service_queues(name, module_class)),
                     migration_job(name, config_path), postgres_cluster(name)]
        else:
            port = 8000 if name == "gateway" else 8080
            objs += [pdb(name, name), http_service(name, port),
                     cpu_hpa(name, name, 10 if name == "gateway" else 6)]
        files[f"{name}.yaml"] = objs
    header = "# Generated by deploy/k8s/generate.py: edit that, not this file.\n"
    texts = {fname: header + yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, width=110)
             for fname, objs in files.items()}
    texts["kustomization.yaml"] = header + yaml.dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": sorted(files)}, Dumper=_Dumper, sort_keys=False)
    return texts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are out of date")
    args = parser.parse_args(argv)
    texts = render()
    stale = sorted(name for name, text in texts.items()
                   if not (BASE / name).exists() or (BASE / name).read_text() != text)
    extra = sorted(p.name for p in BASE.glob("*.yaml") if p.name not in texts) if BASE.exists() else []
    if args.check:
        if stale or extra:
            print(f"deploy/k8s/base is out of date ({', '.join(stale + extra)}): "
                  "run python deploy/k8s/generate.py", file=sys.stderr)
            return 1
        return 0
    BASE.mkdir(parents=True, exist_ok=True)
    for name in extra:
        (BASE / name).unlink()
    for name, text in texts.items():
        (BASE / name).write_text(text)
    print(f"wrote {len(texts)} files to {BASE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
