#!/usr/bin/env python3
"""Checks of deploy/k8s and the Dockerfile that a schema cannot make.

Subcommands (all take the repository root first):

  kustomization ROOT   every resource listed exists, every manifest of
                       deploy/k8s is listed (secret.example.yaml excepted:
                       it must hold no document), the image it sets is the
                       Deployment's
  values ROOT [DIR]    the numbers and settings the deployment promises,
                       explicitly: HPA, resources, security context, probes,
                       grace period against server.shutdown_grace, secrets
                       only by reference, the config's *_env / file keys
                       fed from the Secret, ports, selectors, the
                       Dockerfile's ENTRYPOINT and USER against the
                       Deployment. DIR: check the manifests there instead
                       (the negative test runs it on a broken copy)
  dockerfile ROOT      the Dockerfile's stages and final USER; prints the
                       builder's cargo command, one word per line
  config ROOT OUT      writes the ConfigMap's gateway.toml to OUT
  mutate DIR FILE EXPR rewrites the manifest DIR/FILE after EXPR, a Python
                       statement on `doc` (the negative tests)

Exit 1 with one line per finding.
"""

import json
import os
import shlex
import sys
import tomllib

import yaml

K8S = "deploy/k8s"
NOT_LISTED = {"kustomization.yaml", "secret.example.yaml"}

errors = []


def err(msg):
    errors.append(msg)


def finish():
    for e in errors:
        print(f"[deploy] {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def manifests(directory):
    """kind -> the one document of that kind in the directory."""
    out = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".yaml") or name in NOT_LISTED:
            continue
        for doc in load(os.path.join(directory, name)):
            if doc.get("kind") in out:
                err(f"{name}: a second {doc['kind']}")
            out[doc.get("kind")] = doc
    return out


def get(doc, path, default=None):
    cur = doc
    for part in path.split("."):
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                return default
        elif isinstance(cur, dict):
            if part not in cur:
                return default
            cur = cur[part]
        else:
            return default
    return cur


def expect(doc, what, path, want):
    got = get(doc, path)
    if got != want:
        err(f"{what}: {path} is {got!r}, expected {want!r}")


def duration_secs(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    raise ValueError(f"not a duration: {text!r}")


# ---- kustomization ------------------------------------------------------------


def cmd_kustomization(root):
    d = os.path.join(root, K8S)
    (k,) = load(os.path.join(d, "kustomization.yaml"))
    if k.get("kind") != "Kustomization":
        err("kustomization.yaml: kind is not Kustomization")
    listed = k.get("resources") or []
    for r in listed:
        if not os.path.isfile(os.path.join(d, r)):
            err(f"kustomization.yaml lists {r}, which does not exist")
    if len(set(listed)) != len(listed):
        err("kustomization.yaml lists a resource twice")
    present = {n for n in os.listdir(d) if n.endswith((".yaml", ".yml"))}
    for n in sorted(present - set(listed) - NOT_LISTED):
        err(f"{K8S}/{n} is not listed in kustomization.yaml")
    for n in NOT_LISTED & set(listed):
        err(f"kustomization.yaml must not list {n}")
    if load(os.path.join(d, "secret.example.yaml")):
        err("secret.example.yaml must hold comments only (no secret values in the repository)")
    if not k.get("namespace"):
        err("kustomization.yaml sets no namespace")
    images = {i["name"] for i in k.get("images") or []}
    dep = manifests(d).get("Deployment")
    image = get(dep, "spec.template.spec.containers.0.image", "")
    name = image.split("@")[0].rsplit(":", 1)[0] if image else ""
    if name not in images:
        err(f"kustomization.yaml's images do not set the Deployment's image {name!r}")
    finish()


# ---- values ---------------------------------------------------------------------


def gateway_toml(cm):
    return tomllib.loads(cm["data"]["gateway.toml"])


def env_keys(node, path=""):
    """(dotted key, value) of every *_env key in the config."""
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}" if path else k
            if k.endswith("_env") and isinstance(v, str):
                yield p, v
            else:
                yield from env_keys(v, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from env_keys(v, f"{path}[{i}]")


def dockerfile_final(root):
    stages = parse_dockerfile(os.path.join(root, "Dockerfile"))
    return stages[-1] if stages else None


def cmd_values(root, directory=None):
    d = directory or os.path.join(root, K8S)
    m = manifests(d)
    dep, hpa, pdb = m.get("Deployment"), m.get("HorizontalPodAutoscaler"), m.get("PodDisruptionBudget")
    svc, ing, netpol, cm = m.get("Service"), m.get("Ingress"), m.get("NetworkPolicy"), m.get("ConfigMap")
    for kind, doc in [("Deployment", dep), ("HorizontalPodAutoscaler", hpa), ("PodDisruptionBudget", pdb),
                      ("Service", svc), ("Ingress", ing), ("NetworkPolicy", netpol), ("ConfigMap", cm)]:
        if doc is None:
            err(f"no {kind} in {d}")
    if errors:
        finish()
    cfg = gateway_toml(cm)

    # HorizontalPodAutoscaler
    H = "HorizontalPodAutoscaler"
    expect(hpa, H, "apiVersion", "autoscaling/v2")
    expect(hpa, H, "spec.scaleTargetRef.kind", "Deployment")
    expect(hpa, H, "spec.scaleTargetRef.name", dep["metadata"]["name"])
    expect(hpa, H, "spec.minReplicas", 2)
    expect(hpa, H, "spec.maxReplicas", 20)
    targets = {}
    for metric in get(hpa, "spec.metrics", []):
        if metric.get("type") == "Resource":
            r = metric["resource"]
            if get(r, "target.type") != "Utilization":
                err(f"{H}: the {r['name']} target is not a Utilization")
            targets[r["name"]] = get(r, "target.averageUtilization")
    if targets != {"cpu": 70, "memory": 80}:
        err(f"{H}: resource targets are {targets}, expected cpu 70 and memory 80 (% utilisation)")
    expect(hpa, H, "spec.behavior.scaleUp.stabilizationWindowSeconds", 300)
    expect(hpa, H, "spec.behavior.scaleDown.stabilizationWindowSeconds", 600)
    if "replicas" in dep["spec"]:
        err("Deployment: spec.replicas is set; the HPA owns the count (a re-apply would reset it)")

    # Deployment: the container
    D = "Deployment"
    pod = dep["spec"]["template"]["spec"]
    if len(pod.get("containers", [])) != 1:
        err(f"{D}: expected one container")
    c = pod["containers"][0]
    expect(c, D, "resources.requests.cpu", "500m")
    expect(c, D, "resources.requests.memory", "1Gi")
    expect(c, D, "resources.limits.cpu", "2000m")
    expect(c, D, "resources.limits.memory", "4Gi")
    uid = get(pod, "securityContext.runAsUser")
    gid = get(pod, "securityContext.runAsGroup")
    if not isinstance(uid, int) or uid == 0 or not isinstance(gid, int) or gid == 0:
        err(f"{D}: runAsUser/runAsGroup must be numeric and non-zero, are {uid!r}/{gid!r}")
    for where, sc in [("pod", pod.get("securityContext", {})), ("container", c.get("securityContext", {}))]:
        if sc.get("runAsNonRoot") is not True:
            err(f"{D}: {where} securityContext.runAsNonRoot is not true")
        if get(sc, "seccompProfile.type") != "RuntimeDefault":
            err(f"{D}: {where} seccompProfile is not RuntimeDefault")
        for k, want in (("runAsUser", uid), ("runAsGroup", gid)):
            if k in sc and sc[k] != want:
                err(f"{D}: {where} securityContext.{k} is {sc[k]}, the pod's is {want}")
    expect(c, D, "securityContext.readOnlyRootFilesystem", True)
    expect(c, D, "securityContext.allowPrivilegeEscalation", False)
    expect(c, D, "securityContext.capabilities.drop", ["ALL"])
    if get(c, "securityContext.capabilities.add"):
        err(f"{D}: capabilities are added")
    if get(c, "securityContext.privileged"):
        err(f"{D}: privileged")
    if pod.get("automountServiceAccountToken") is not False:
        err(f"{D}: automountServiceAccountToken is not false (the gateway needs no API token)")

    # Ports against the config
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    listen_port = int(cfg["server"]["listen"].rsplit(":", 1)[1])
    ops_port = int(cfg["server"]["ops_listen"].rsplit(":", 1)[1])
    if not cfg["server"]["listen"].startswith("0.0.0.0:"):
        err(f"gateway.toml: server.listen is {cfg['server']['listen']}, not 0.0.0.0 (unreachable in a pod)")
    if ports != {"http": listen_port, "ops": ops_port}:
        err(f"{D}: container ports {ports}, the config listens on {listen_port} (http) and {ops_port} (ops)")
    ann = get(dep, "spec.template.metadata.annotations", {})
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(ops_port):
        err(f"{D}: the Prometheus annotations do not name the operations port {ops_port}")

    # Probes
    for probe, path in (("startupProbe", "/health/live"), ("livenessProbe", "/health/live"),
                        ("readinessProbe", "/health/ready")):
        p = c.get(probe)
        if not p:
            err(f"{D}: no {probe}")
            continue
        if get(p, "httpGet.path") != path or get(p, "httpGet.port") not in ("http", listen_port):
            err(f"{D}: {probe} is not GET {path} on the main port")
    sp = c.get("startupProbe", {})
    grace = sp.get("failureThreshold", 3) * sp.get("periodSeconds", 10)
    if grace != 120:
        err(f"{D}: startupProbe allows {grace} s (failureThreshold x periodSeconds), expected the seed's 120 s")

    # Shutdown
    shutdown = duration_secs(cfg["server"].get("shutdown_grace", "30s"))
    pre_stop = get(c, "lifecycle.preStop.sleep.seconds", 0)
    tgp = pod.get("terminationGracePeriodSeconds", 30)
    if tgp <= shutdown + pre_stop:
        err(f"{D}: terminationGracePeriodSeconds {tgp} is not above preStop {pre_stop} s + shutdown_grace {shutdown} s")
    if get(c, "lifecycle.preStop.exec"):
        err(f"{D}: a preStop exec hook: the image has no shell")

    # Arguments, volumes, the data directory, the config file
    args = c.get("args") or []
    if c.get("command"):
        err(f"{D}: command overrides the image's ENTRYPOINT")

    def arg(flag):
        return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None

    config_path, data_dir = arg("--config"), arg("--data-dir")
    if not config_path or not data_dir:
        err(f"{D}: args lack --config or --data-dir: {args}")
        finish()
    mounts = {vm["mountPath"]: vm for vm in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    data_mount = mounts.get(data_dir)
    if not data_mount or "emptyDir" not in volumes.get(data_mount["name"], {}):
        err(f"{D}: --data-dir {data_dir} is not an emptyDir mount")
    elif data_mount.get("readOnly"):
        err(f"{D}: the data directory is mounted read-only")
    cdir, cfile = os.path.split(config_path)
    cmount = mounts.get(cdir)
    cvol = volumes.get(cmount["name"], {}) if cmount else {}
    if get(cvol, "configMap.name") != cm["metadata"]["name"] or not cmount.get("readOnly"):
        err(f"{D}: --config {config_path} is not in a read-only mount of ConfigMap {cm['metadata']['name']}")
    else:
        items = {i["path"]: i["key"] for i in get(cvol, "configMap.items", [])}
        if items.get(cfile, cfile if not items else None) != "gateway.toml":
            err(f"{D}: {config_path} is not the ConfigMap's gateway.toml")

    # Secrets: only by reference
    env = {e["name"]: e for e in c.get("env", [])}
    for e in c.get("env", []):
        if "value" in e and any(s in e["name"].upper() for s in ("URL", "KEY", "TOKEN", "PASSWORD", "SECRET")):
            err(f"{D}: env {e['name']} has a literal value; secrets come from a secretKeyRef")
    if c.get("envFrom"):
        err(f"{D}: envFrom (name every variable, so the config's *_env keys can be checked)")
    secret_names = set()
    for name, key in list(env_keys(cfg)) + [("state.redis_url", "KAILASH_REDIS_URL")]:
        ref = get(env.get(key, {}), "valueFrom.secretKeyRef")
        if not ref:
            err(f"{D}: {name} reads {key}, which the Deployment does not take from a Secret")
        else:
            secret_names.add(ref["name"])
    if "redis_url" in cfg.get("state", {}):
        err("gateway.toml: state.redis_url is set in the file (it may hold a password): use KAILASH_REDIS_URL")
    signing = cfg.get("auth", {}).get("signing_key")
    if not signing or not os.path.isabs(signing):
        err("gateway.toml: auth.signing_key must be an absolute path into the Secret volume "
            "(otherwise each pod generates its own key and refuses the others' tokens)")
    else:
        sdir, sfile = os.path.split(signing)
        smount = mounts.get(sdir)
        svol = volumes.get(smount["name"], {}) if smount else {}
        items = {i["path"]: i["key"] for i in get(svol, "secret.items", [])}
        if "secret" not in svol or not smount.get("readOnly") or sfile not in items:
            err(f"{D}: auth.signing_key {signing} is not a file of a read-only Secret volume")
        else:
            secret_names.add(svol["secret"]["secretName"])
            mode = svol["secret"].get("defaultMode", 0o644)
            if mode & 0o007:
                err(f"{D}: the signing key's Secret volume is world-readable (defaultMode {oct(mode)})")
    if len(secret_names) != 1:
        err(f"{D}: the secrets come from {sorted(secret_names)}; expected one Secret")
    if cfg.get("audit", {}).get("sink") != "postgres":
        err("gateway.toml: audit.sink is not postgres (an emptyDir trail would be lost with its pod)")

    # The Dockerfile's image against the Deployment
    final = dockerfile_final(root)
    if final:
        user = final.get("USER", "")
        if user != f"{uid}:{gid}":
            err(f"Dockerfile: USER {user!r}, the Deployment runs as {uid}:{gid}")
        entry = final.get("ENTRYPOINT", [])
        if entry[1:] != args:
            err(f"Dockerfile: ENTRYPOINT arguments {entry[1:]} differ from the Deployment's args {args}")

    # Selectors
    labels = get(dep, "spec.template.metadata.labels", {})
    for what, sel in (("Deployment selector", get(dep, "spec.selector.matchLabels")),
                      ("Service selector", get(svc, "spec.selector")),
                      ("PodDisruptionBudget selector", get(pdb, "spec.selector.matchLabels")),
                      ("NetworkPolicy podSelector", get(netpol, "spec.podSelector.matchLabels"))):
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            err(f"{what} {sel} does not select the gateway's pods {labels}")
    if get(svc, "spec.ports.0.targetPort") not in ("http", listen_port):
        err("Service: targetPort is not the main port")
    if any(p.get("targetPort") in ("ops", ops_port) for p in get(svc, "spec.ports", [])):
        err("Service: exposes the operations port (it must stay off the ingress's Service)")
    if get(svc, "spec.sessionAffinity", "None") != "None":
        err("Service: sessionAffinity set; every pod serves every request")
    backend = get(ing, "spec.rules.0.http.paths.0.backend.service")
    if not backend or backend.get("name") != svc["metadata"]["name"]:
        err("Ingress: does not route to the gateway's Service")
    if get(pdb, "spec.maxUnavailable") != 1 and get(pdb, "spec.minAvailable") is None:
        err("PodDisruptionBudget: neither maxUnavailable 1 nor a minAvailable")
    ing_ports = [p.get("port") for rule in get(netpol, "spec.ingress", []) for p in rule.get("ports", [])]
    if sorted(map(str, ing_ports)) != ["http", "ops"]:
        err(f"NetworkPolicy: ingress ports {ing_ports}, expected exactly http and ops")
    if sorted(get(netpol, "spec.policyTypes", [])) != ["Egress", "Ingress"]:
        err("NetworkPolicy: does not restrict both ingress and egress")
    finish()


# ---- Dockerfile ---------------------------------------------------------------------


def parse_dockerfile(path):
    """Stages as dicts: FROM, AS, RUN (list), USER, ENTRYPOINT, EXPOSE, COPY."""
    with open(path) as f:
        text = f.read()
    lines, cur = [], ""
    for raw in text.splitlines():
        if not cur and (raw.lstrip().startswith("#") or not raw.strip()):
            continue
        if raw.rstrip().endswith("\\"):
            cur += raw.rstrip()[:-1] + " "
            continue
        lines.append(cur + raw)
        cur = ""
    if cur:
        lines.append(cur)
    stages = []
    for line in lines:
        instr, _, rest = line.strip().partition(" ")
        instr, rest = instr.upper(), rest.strip()
        if instr == "FROM":
            words = rest.split()
            stage = {"FROM": words[0], "AS": words[2] if len(words) == 3 and words[1].lower() == "as" else None,
                     "RUN": [], "COPY": [], "EXPOSE": []}
            stages.append(stage)
        elif not stages:
            if instr != "ARG":
                raise SystemExit(f"Dockerfile: {instr} before FROM")
        elif instr == "RUN":
            stages[-1]["RUN"].append(rest)
        elif instr == "COPY":
            stages[-1]["COPY"].append(rest)
        elif instr == "EXPOSE":
            stages[-1]["EXPOSE"] += rest.split()
        elif instr in ("ENTRYPOINT", "CMD"):
            stages[-1][instr] = json.loads(rest)
        else:
            stages[-1][instr] = rest
    return stages


def cmd_dockerfile(root):
    stages = parse_dockerfile(os.path.join(root, "Dockerfile"))
    if len(stages) < 2:
        err(f"Dockerfile: {len(stages)} stage(s); expected a builder and a final stage")
        finish()
    builder, final = stages[0], stages[-1]
    if not builder["FROM"].startswith("rust:1.95"):
        err(f"Dockerfile: the builder is {builder['FROM']}, not the official rust:1.95 image")
    cargo = [r for r in builder["RUN"] if "cargo" in r]
    if len(cargo) != 1 or any(s in cargo[0] for s in ("&&", ";", "|", "$(", "`")):
        err(f"Dockerfile: the builder must have exactly one RUN holding one cargo command, has {cargo}")
        finish()
    words = shlex.split(cargo[0])
    if words[:2] != ["cargo", "build"]:
        err(f"Dockerfile: the builder's RUN is not a cargo build: {cargo[0]}")
    for need in (["--locked"], ["--release"], ["-p", "kailash-examples"], ["--bin", "enterprise_gateway"]):
        if not any(words[i:i + len(need)] == need for i in range(len(words))):
            err(f"Dockerfile: the cargo command lacks {' '.join(need)}")
    with open(os.path.join(root, "examples/Cargo.toml"), "rb") as f:
        defaults = set(tomllib.load(f)["features"]["default"])
    if "--no-default-features" in words:
        feats = set()
        for i, w in enumerate(words):
            if w == "--features" and i + 1 < len(words):
                feats |= {x for x in words[i + 1].replace(",", " ").split()}
        if feats != defaults:
            err(f"Dockerfile: features {sorted(feats)} differ from the reference deployment's defaults "
                f"{sorted(defaults)} (examples/Cargo.toml): change both or explain the difference")
    # The final stage: numeric non-root user, the binary, an entrypoint.
    user = final.get("USER", "")
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or int(uid) == 0 or (gid and (not gid.isdigit() or int(gid) == 0)):
        err(f"Dockerfile: the final USER must be a numeric non-zero uid[:gid], is {user!r}")
    src = f"--from={builder['AS']} /src/target/release/enterprise_gateway"
    if builder["AS"] is None or not any(cp.startswith(src) for cp in final["COPY"]):
        err(f"Dockerfile: the final stage does not copy the built binary ({src})")
    entry = final.get("ENTRYPOINT")
    if not entry or not entry[0].endswith("/enterprise_gateway"):
        err(f"Dockerfile: ENTRYPOINT (exec form) must run the binary, is {entry}")
    if not final["EXPOSE"]:
        err("Dockerfile: no EXPOSE in the final stage")
    if errors:
        finish()
    print("\n".join(words))


def cmd_config(root, out):
    for doc in load(os.path.join(root, K8S, "configmap.yaml")):
        if doc.get("kind") == "ConfigMap":
            with open(out, "w") as f:
                f.write(doc["data"]["gateway.toml"])
            return
    raise SystemExit("no ConfigMap in configmap.yaml")


def cmd_mutate(directory, name, expr):
    path = os.path.join(directory, name)
    (doc,) = load(path)
    exec(expr, {"doc": doc})
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    {"kustomization": cmd_kustomization, "values": cmd_values, "dockerfile": cmd_dockerfile,
     "config": cmd_config, "mutate": cmd_mutate}[cmd](*rest)
