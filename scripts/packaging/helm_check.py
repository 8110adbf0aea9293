"""Lints and renders packaging/helm/gleaner with the Helm v4 SDK (helm-python-sdk) and checks
what the rendered manifests promise. Writes each variant's manifests to OUT/<variant>/ for
kubernetes-validate, and the rendered gleaner.toml to OUT/<variant>/gleaner.toml.

usage: python helm_check.py CHART_DIR OUT_DIR
"""

import os
import sys

import helm_python as helm
import yaml

TOKEN = "0123456789abcdef-test-token"
VARIANTS = {
    "default": {},
    "full": {
        "replicaCount": 3,
        "adminToken": {"value": TOKEN},
        "ingress": {"enabled": True, "className": "nginx",
                    "tls": [{"secretName": "gleaner-tls", "hosts": ["gleaner.example.com"]}]},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "replication": {"enabled": True, "url": "s3://gleaner/replicas/",
                        "secondUrl": "file:///mnt/backup/gleaner",
                        "s3": {"endpoint": "http://minio.minio:9000", "forcePathStyle": True},
                        "credentials": {"existingSecret": "gleaner-s3"},
                        "restore": {"extraArgs": ["--parallelism", "16"]},
                        "extraConfig": "level_intervals_secs = [30, 300]"},
        "persistence": {"storageClass": "fast-ssd"},
        "extraEnvFrom": [{"configMapRef": {"name": "gleaner-extra"}}],
    },
    # Replication to AWS with the SDK's credential chain (IRSA), KMS, no init container.
    "replication-aws": {"replication": {"enabled": True, "url": "s3://acme-backups/gleaner",
                                        "s3": {"region": "eu-central-1", "sse": "aws:kms"},
                                        "verifyIntervalSecs": 3600,
                                        "restore": {"enabled": False}},
                        "serviceAccount": {"annotations": {
                            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/gleaner"}}},
    "existing-secret": {"adminToken": {"existingSecret": "my-admin", "secretKey": "token"},
                        "podDisruptionBudget": {"enabled": False}},
}

failures = []


def check(ok, what):
    print(("  ok   " if ok else "  FAIL ") + what)
    if not ok:
        failures.append(what)


def docs(rendered):
    out = []
    for path, text in rendered.items():
        if not path.endswith(".yaml"):
            continue
        for d in yaml.safe_load_all(text):
            if d:
                out.append(d)
    return out


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return found[0] if len(found) == 1 else None


def main():
    chart_dir, out_dir = sys.argv[1], sys.argv[2]
    print(f"helm SDK {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__})")

    report = helm.lint(chart_dir, strict=True)
    for m in report["messages"]:
        print(f"  lint severity={m['severity']} {m['path']}: {m['error']}")
    # Severity 1 is informational ("icon is recommended"); warnings and errors fail.
    check(not report["errors"] and all(m["severity"] < 2 for m in report["messages"]),
          "helm lint --strict: no warnings or errors")

    chart = helm.Chart.load(chart_dir)
    for variant, values in VARIANTS.items():
        print(f"variant {variant}:")
        rendered = chart.render(values, name="rel", namespace="gleaner", is_install=True)
        objs = docs(rendered)
        vdir = os.path.join(out_dir, variant)
        os.makedirs(vdir, exist_ok=True)
        for i, o in enumerate(objs):
            with open(os.path.join(vdir, f"{i:02d}-{o['kind'].lower()}.yaml"), "w") as f:
                yaml.safe_dump(o, f, sort_keys=False)
        kinds = sorted(o["kind"] for o in objs)
        print("  kinds:", " ".join(kinds))
        check("HorizontalPodAutoscaler" not in kinds, "no HorizontalPodAutoscaler")
        check(not any(o["kind"] in ("Deployment", "ReplicaSet") for o in objs),
              "writers run as a StatefulSet only")

        sts = one(objs, "StatefulSet")
        check(sts is not None, "one StatefulSet")
        spec = sts["spec"]
        pod = spec["template"]["spec"]
        c = next(x for x in pod["containers"] if x["name"] == "gleaner")
        check(spec["replicas"] == values.get("replicaCount", 1), "replicas from values")
        check(spec["serviceName"] == "rel-gleaner-headless", "governed by the headless Service")
        vct = spec["volumeClaimTemplates"][0]
        check(vct["metadata"]["name"] == "data"
              and vct["spec"]["resources"]["requests"]["storage"] == "10Gi",
              "volumeClaimTemplates data 10Gi")
        check(any(m["name"] == "data" and m["mountPath"] == "/var/lib/gleaner"
                  for m in c["volumeMounts"]), "data volume mounted at /var/lib/gleaner")
        psc, csc = pod["securityContext"], c["securityContext"]
        check(psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
              and psc["seccompProfile"]["type"] == "RuntimeDefault",
              "pod runs as non-root with RuntimeDefault seccomp")
        check(csc["readOnlyRootFilesystem"] is True and csc["allowPrivilegeEscalation"] is False
              and csc["capabilities"]["drop"] == ["ALL"],
              "container: read-only root, no privilege escalation, capabilities dropped")
        check(pod["automountServiceAccountToken"] is False, "no service account token mounted")
        check(c["startupProbe"]["httpGet"]["path"] == "/healthz"
              and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
              and c["readinessProbe"]["httpGet"]["path"] == "/readyz",
              "startup/liveness on /healthz, readiness on /readyz")
        check(pod["terminationGracePeriodSeconds"] >= 60,
              f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} >= 60")
        check(bool(c["resources"].get("requests")) and bool(c["resources"].get("limits")),
              "resource requests and limits")
        env = {e["name"]: e for e in c["env"]}
        check(env["GLEANER_HTTP__LISTEN"]["value"] == "0.0.0.0:8080"
              and env["GLEANER_STORE__DATA_DIR"]["value"] == "/var/lib/gleaner"
              and env["GLEANER_CONFIG"]["value"] == "/etc/gleaner/gleaner.toml",
              "listen, data dir and config file set by env")

        tok = env.get("GLEANER_HTTP__ADMIN_TOKEN")
        secret = one(objs, "Secret")
        av = values.get("adminToken", {})
        if av.get("value"):
            ref = tok["valueFrom"]["secretKeyRef"] if tok else {}
            check(ref.get("name") == "rel-gleaner" and secret is not None
                  and "admin-token" in secret["data"],
                  "admin token from the chart's Secret")
        elif av.get("existingSecret"):
            ref = tok["valueFrom"]["secretKeyRef"] if tok else {}
            check(ref == {"name": "my-admin", "key": "token"} and secret is None,
                  "admin token from the existing Secret")
        else:
            check(tok is None and secret is None, "no admin token, no Secret")
        check(all("value" not in e or "TOKEN" not in e["name"] for e in c["env"]),
              "no token value inline in the pod spec")

        init = pod.get("initContainers") or []
        rv = values.get("replication", {})
        if rv.get("enabled"):
            url = rv["url"].rstrip("/") + "/$(POD_NAME)"
            check(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
                  and list(env).index("POD_NAME") < list(env).index("GLEANER_REPLICATE__URL")
                  and env["GLEANER_REPLICATE__URL"]["value"] == url,
                  f"per-pod replica URL {url}")
            cred = rv.get("credentials", {}).get("existingSecret")
            if cred:
                check(all(env[k]["valueFrom"]["secretKeyRef"]["name"] == cred
                          for k in ("GLEANER_REPLICATE__S3__ACCESS_KEY_ID",
                                    "GLEANER_REPLICATE__S3__SECRET_ACCESS_KEY")),
                      "S3 credentials from the existing Secret")
            else:
                check(not any("S3__" in k for k in env), "no S3 credentials: the AWS SDK chain")
        else:
            check(not any(k.startswith("GLEANER_REPLICATE") or k == "POD_NAME" for k in env),
                  "no replication environment while replication is disabled")
        if rv.get("enabled") and rv.get("restore", {}).get("enabled", True):
            a = init[0]["args"] if len(init) == 1 else []
            check(len(init) == 1 and init[0]["name"] == "restore"
                  and a[:4] == ["restore", "--if-db-not-exists", "--if-replica-exists", "--quiet"]
                  and a[-3:] == ["--output", "/var/lib/gleaner/control.db", url + "/control"]
                  and init[0]["env"] == c["env"]
                  and any(m["name"] == "data" and m["mountPath"] == "/var/lib/gleaner"
                          for m in init[0]["volumeMounts"]),
                  "restore init container: control.db only when missing and replicated")
        else:
            check(init == [], "no init container unless replication and restore are enabled")

        cm = one(objs, "ConfigMap")
        toml_text = cm["data"]["gleaner.toml"]
        check(("[replicate]" in toml_text) == bool(rv.get("enabled")),
              "[replicate] rendered exactly when replication is enabled")
        with open(os.path.join(out_dir, variant + ".gleaner.toml"), "w") as f:
            f.write(toml_text)
        # The container's GLEANER_* environment for `gleaner config check`: literal values,
        # $(POD_NAME) expanded as Kubernetes would, Secret references as placeholders.
        with open(os.path.join(out_dir, variant + ".env"), "w") as f:
            for k, e in env.items():
                if not k.startswith("GLEANER_") or k in ("GLEANER_CONFIG", "GLEANER_STORE__DATA_DIR"):
                    continue
                v = e.get("value", f"placeholder-from-secret-{k.lower()}-0123456789")
                f.write(f"{k}={v.replace('$(POD_NAME)', 'rel-gleaner-0')}\n")

        svc = one(objs, "Service", "rel-gleaner")
        check(svc is not None and svc["spec"]["ports"][0]["targetPort"] == "http",
              "Service on the http port")
        pdb = one(objs, "PodDisruptionBudget")
        if values.get("podDisruptionBudget", {}).get("enabled", True):
            check(pdb is not None and pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"],
                  "PodDisruptionBudget selects the pods")
        sm = one(objs, "ServiceMonitor")
        if values.get("serviceMonitor", {}).get("enabled"):
            services = [o for o in objs if o["kind"] == "Service"]
            sel = sm["spec"]["selector"]

            def selects(s):
                labels = s["metadata"]["labels"]
                return (all(labels.get(k) == v for k, v in sel["matchLabels"].items())
                        and all(e["key"] not in labels for e in sel.get("matchExpressions", [])
                                if e["operator"] == "DoesNotExist"))

            chosen = [s["metadata"]["name"] for s in services if selects(s)]
            check(chosen == ["rel-gleaner"], f"ServiceMonitor selects exactly one Service ({chosen})")
            check(sm["spec"]["endpoints"][0]["port"] == "http"
                  and sm["spec"]["endpoints"][0]["path"] == "/metrics", "ServiceMonitor scrapes /metrics")
            check(sm["metadata"]["labels"].get("release") == "prometheus", "ServiceMonitor extra labels")
        else:
            check(sm is None, "no ServiceMonitor unless enabled")
        ing = one(objs, "Ingress")
        check((ing is not None) == bool(values.get("ingress", {}).get("enabled")),
              "Ingress only when enabled")

    print("schema and guards:")
    for bad, why in [({"replicacount": 2}, "unknown key"),
                     ({"replicaCount": "two"}, "wrong type"),
                     ({"terminationGracePeriodSeconds": 5}, "grace period too short"),
                     ({"adminToken": {"value": "short"}}, "token under 16 characters"),
                     ({"replication": {"enabled": True}}, "replication without a URL"),
                     ({"replication": {"enabled": True, "url": "s3://b/p?endpoint=http://x"}},
                      "replica URL with a query string"),
                     ({"replication": {"s3": {"sse": "AES128"}}}, "unknown SSE mode"),
                     ({"replication": {"enabled": True, "url": "s3://b/p"},
                       "config": "[replicate]\nenabled = true\n"},
                      "[replicate] in config while replication values are used")]:
        try:
            chart.render(bad, name="rel", namespace="gleaner")
            check(False, f"rejects {why}")
        except helm.HelmError as e:
            check(True, f"rejects {why}: {str(e).splitlines()[-1].strip()[:100]}")

    if failures:
        print(f"{len(failures)} helm check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
