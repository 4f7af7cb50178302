//! The Helm chart as a cluster admin meets it: `helm lint --strict`, `helm template` with the
//! default values, on OpenShift, with every optional feature on, and with watched namespaces;
//! the values schema refusing what the binary would refuse; and every rendered object accepted
//! by the real kube-apiserver (server-side apply, dry run). helm is built from its Go module
//! by scripts/install-test-deps.

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use serde_json::{Value, json};
use support::cluster;

const RELEASE: &str = "imageset-operator";
const NAMESPACE: &str = "imageset-operator";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/imageset-operator")
}

fn yaml_file(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn helm(args: &[&str]) -> Output {
    Command::new(support::require("helm")).args(args).output().expect("run helm")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `helm template` of the chart directory with these extra arguments; the output, or helm's
/// complaint.
fn try_template(extra: &[&str]) -> Result<Vec<Value>, String> {
    template_of(&chart(), extra)
}

/// `helm template` of a chart (directory or archive).
fn template_of(chart: &Path, extra: &[&str]) -> Result<Vec<Value>, String> {
    let mut args = vec!["template", RELEASE, chart.to_str().unwrap(), "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let out = helm(&args);
    if !out.status.success() {
        return Err(text(&out));
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    Ok(stdout
        .split("\n---")
        .map(|d| d.trim_start_matches("---").trim())
        .filter(|d| !d.is_empty())
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
        .filter(|v| !v.is_null())
        .collect())
}

fn template(extra: &[&str]) -> Vec<Value> {
    try_template(extra).unwrap_or_else(|e| panic!("helm template {extra:?} failed: {e}"))
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = find(objects, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

fn container(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(objects: &[Value]) -> Vec<String> {
    container(objects)["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

fn env(objects: &[Value], name: &str) -> Option<Value> {
    container(objects)["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].clone())
}

/// The values file that turns every optional feature on, with tuning values unlike the defaults.
fn full_values(dir: &Path) -> PathBuf {
    let path = dir.join("full.yaml");
    let values = json!({
        "replicaCount": 2,
        "cache": {"accessMode": "ReadWriteMany", "keep": true, "size": "20Gi"},
        "archive": {"enabled": true, "keep": true, "accessMode": "ReadWriteMany", "size": "2Ti"},
        "logFormat": "plain",
        "logLevel": "info,imageset_operator=debug",
        "leaseDurationSeconds": 21,
        "retryIntervalSeconds": 90,
        "retryTimes": 7,
        "registryRequests": 16,
        "maxConcurrentRuns": 3,
        "stallTimeoutSeconds": 45,
        "unreachableAfterSeconds": 40,
        "release": {
            "updateUrl": "https://updates.example.com/api/upgrades_info/graph",
            "okdUpdateUrl": "https://okd.example.com/graph",
            "signatureUrl": "https://signatures.example.com/sigs",
            "signatureKeys": {"configMap": "release-keys", "keys": ["a.asc", "b.asc"]},
            "ignoreSignature": true,
            "graphDataUrl": "https://graph.example.com/graph-data.tar.gz",
            "graphBaseImage": "registry.example.com/ubi9/ubi:9.6",
            "timeoutSeconds": 200
        },
        "trustedCA": {"enabled": true},
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"},
            {"name": "NO_PROXY", "value": ".svc,.cluster.local,10.0.0.0/16"}
        ],
        "envFrom": [{"secretRef": {"name": "proxy-credentials", "optional": true}}],
        "extraArgs": ["--admin-addr=0.0.0.0:8080"],
        "crds": {"templated": true},
        "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}},
        "networkPolicy": {"enabled": true, "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
        "priorityClassName": "system-cluster-critical",
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "imageset-operator"}}
        }],
        "allowedNamespaces": ["imageset-operator", "team-a"],
        "shards": {"maxPerImageSet": 6, "maxPods": 12, "cache": "pvc", "backoffLimitPerIndex": 2, "startTimeoutSeconds": 900,
                   "resources": {"requests": {"cpu": "1", "memory": "512Mi"}}}
    });
    std::fs::write(&path, serde_json::to_string_pretty(&values).unwrap()).unwrap();
    path
}

/// An API `helm template` does not assume but the test world's kube-apiserver serves (as does
/// OpenShift 4.17 and later): the chart then renders its admission policy.
const VAP: &str = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";

/// The value sets every check runs over: (name, values arguments, capability arguments).
fn value_sets(dir: &Path) -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let full = full_values(dir).to_str().unwrap().to_string();
    let apis = |list: &[&str]| list.iter().flat_map(|a| ["--api-versions".to_string(), a.to_string()]).collect();
    vec![
        ("defaults", vec![], vec![]),
        ("openshift", vec![], apis(&["security.openshift.io/v1", VAP])),
        ("full", vec!["-f".into(), full], apis(&[VAP])),
        ("watch", vec!["--set".into(), "watchNamespaces={team-a,team-b}".into()], vec![]),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn helm_lint_strict_passes_with_defaults_and_every_feature_on() {
    let tmp = support::temp_dir("chart-");
    for (name, values, _) in value_sets(tmp.path()) {
        let chart = chart();
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap(), "--namespace", NAMESPACE];
        // lint takes values, not capabilities.
        args.extend(strs(&values));
        let out = helm(&args);
        assert!(out.status.success(), "helm lint --strict ({name}) failed:\n{}", text(&out));
        assert!(text(&out).contains("1 chart(s) linted, 0 chart(s) failed"), "{name}: {}", text(&out));
    }
}

#[test]
fn the_default_image_is_registry_qualified_and_tagged_with_the_app_version() {
    let chart_yaml = yaml_file(&chart().join("Chart.yaml"));
    let values = yaml_file(&chart().join("values.yaml"));
    let objects = template(&[]);
    let repo = values["image"]["repository"].as_str().unwrap();
    let registry = repo.split('/').next().unwrap();
    assert!(repo.contains('/') && registry.contains('.'), "{repo} names no registry host");
    let app_version = chart_yaml["appVersion"].as_str().unwrap();
    assert_eq!(container(&objects)["image"], format!("{repo}:{app_version}"));
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], values["replicaCount"]);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "ReadWriteOnce cache");
    // Defaults render the binary's own defaults as flags, each from its value.
    let a = args(&objects);
    for (flag, key) in [
        ("--lease-duration", "leaseDurationSeconds"),
        ("--retry-interval", "retryIntervalSeconds"),
        ("--retry-times", "retryTimes"),
        ("--max-concurrent-runs", "maxConcurrentRuns"),
        ("--stall-timeout", "stallTimeoutSeconds"),
        ("--unreachable-after", "unreachableAfterSeconds"),
        ("--leader-election", "leaderElection"),
    ] {
        assert!(a.contains(&format!("{flag}={}", values[key])), "{flag}={} not in {a:?}", values[key]);
    }
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["fsGroup"], values["podSecurityContext"]["fsGroup"]);
    assert_eq!(env(&objects, "LOG_FORMAT").unwrap(), values["logFormat"]);
    assert_eq!(env(&objects, "LOG_LEVEL").unwrap(), values["logLevel"]);
    assert!(env(&objects, "SSL_CERT_DIR").is_none());
    for kind in ["CustomResourceDefinition", "ServiceMonitor", "NetworkPolicy", "ConfigMap"] {
        assert!(find(&objects, kind).is_empty(), "{kind} rendered by default");
    }
    let pvc = one(&objects, "PersistentVolumeClaim");
    assert_eq!(pvc["spec"]["accessModes"], json!([values["cache"]["accessMode"]]));
    assert!(pvc["metadata"]["annotations"].get("helm.sh/resource-policy").is_none());
}

/// On OpenShift the SCC assigns fsGroup and user IDs: the chart leaves them out and changes
/// nothing else.
#[test]
fn on_openshift_fs_group_and_user_ids_are_left_to_the_scc() {
    let plain = template(&[]);
    let openshift = template(&["--api-versions", "security.openshift.io/v1"]);
    let forced = template(&["--set", "openshift=true"]);
    assert_eq!(openshift, forced, "openshift=true renders what detection renders");
    assert_eq!(plain.len(), openshift.len());
    let pod = &one(&openshift, "Deployment")["spec"]["template"]["spec"];
    let rendered = pod.to_string();
    for field in ["fsGroup", "runAsUser", "runAsGroup"] {
        assert!(!rendered.contains(&format!("\"{field}\"")), "{field} set on OpenShift: {pod:#}");
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let mut expected = plain.clone();
    for o in expected.iter_mut().filter(|o| o["kind"] == "Deployment") {
        o["spec"]["template"]["spec"]["securityContext"].as_object_mut().unwrap().remove("fsGroup");
    }
    assert_eq!(expected, openshift, "OpenShift changes only the pod's fsGroup");
}

#[test]
fn every_optional_feature_renders_wired_together() {
    let tmp = support::temp_dir("chart-");
    let full_path = full_values(tmp.path());
    let full = yaml_file(&full_path);
    let objects = template(&["-f", full_path.to_str().unwrap()]);
    let deployment = one(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(&objects);
    assert_eq!(deployment["spec"]["replicas"], full["replicaCount"]);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate", "shared cache");
    assert_eq!(pod["priorityClassName"], full["priorityClassName"]);
    assert_eq!(pod["topologySpreadConstraints"], full["topologySpreadConstraints"]);
    assert_eq!(c["envFrom"], full["envFrom"]);
    for e in full["extraEnv"].as_array().unwrap() {
        assert_eq!(env(&objects, e["name"].as_str().unwrap()).as_ref(), Some(&e["value"]), "{e}");
    }
    assert_eq!(env(&objects, "ALLOWED_NAMESPACES").unwrap(), "imageset-operator,team-a");
    // Shard Jobs: the same image and ServiceAccount, the cache claim shared, the limits.
    let claim = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "cache").unwrap()
        ["persistentVolumeClaim"]["claimName"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env(&objects, "SHARD_CACHE").unwrap(), format!("pvc:{claim}"));
    assert_eq!(env(&objects, "SHARD_IMAGE").unwrap(), c["image"]);
    assert_eq!(env(&objects, "SERVICE_ACCOUNT").unwrap(), pod["serviceAccountName"]);
    assert_eq!(env(&objects, "MAX_SHARDS").unwrap(), "6");
    assert_eq!(env(&objects, "MAX_SHARD_PODS").unwrap(), "12");
    assert_eq!(env(&objects, "SHARD_BACKOFF").unwrap(), "2");
    assert_eq!(env(&objects, "SHARD_START_TIMEOUT").unwrap(), "900");
    let resources: Value = serde_json::from_str(env(&objects, "SHARD_RESOURCES").unwrap().as_str().unwrap()).unwrap();
    assert_eq!(resources, full["shards"]["resources"]);

    // Every flag the chart passes is one `run` takes (the binary's own help).
    let help = Command::new(env!("CARGO_BIN_EXE_imageset-operator")).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let a = args(&objects);
    assert_eq!(a[0], "run");
    for arg in &a[1..] {
        let flag = arg.split('=').next().unwrap();
        let named = help
            .match_indices(flag)
            .any(|(i, _)| !help[i + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-'));
        assert!(named, "{flag} is not a run flag:\n{help}");
    }
    let r = &full["release"];
    let mut expected: Vec<String> = [
        ("--lease-duration", &full["leaseDurationSeconds"]),
        ("--retry-interval", &full["retryIntervalSeconds"]),
        ("--retry-times", &full["retryTimes"]),
        ("--registry-requests", &full["registryRequests"]),
        ("--max-concurrent-runs", &full["maxConcurrentRuns"]),
        ("--stall-timeout", &full["stallTimeoutSeconds"]),
        ("--unreachable-after", &full["unreachableAfterSeconds"]),
        ("--release-timeout", &r["timeoutSeconds"]),
        ("--update-url", &r["updateUrl"]),
        ("--okd-update-url", &r["okdUpdateUrl"]),
        ("--release-signature-url", &r["signatureUrl"]),
        ("--graph-data-url", &r["graphDataUrl"]),
        ("--graph-base-image", &r["graphBaseImage"]),
    ]
    .iter()
    .map(|(f, v)| format!("{f}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
    .collect();
    expected.push("--ignore-release-signature".into());
    for e in &expected {
        assert!(a.contains(e), "{e} not in {a:?}");
    }
    assert_eq!(a.last().unwrap(), full["extraArgs"][0].as_str().unwrap(), "extraArgs come last");

    let mount_of = |volume: &str| -> String {
        let m = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == volume);
        m.unwrap_or_else(|| panic!("no mount of {volume}"))["mountPath"].as_str().unwrap().to_string()
    };
    let volume = |name: &str| -> &Value {
        pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no {name}"))
    };
    // Release keys: each named key is a file of the mounted ConfigMap.
    assert_eq!(volume("release-keys")["configMap"]["name"], r["signatureKeys"]["configMap"]);
    for key in r["signatureKeys"]["keys"].as_array().unwrap() {
        let e = format!("--release-signature-key={}/{}", mount_of("release-keys"), key.as_str().unwrap());
        assert!(a.contains(&e), "{e} not in {a:?}");
    }

    // Trusted CA: the injected ConfigMap, mounted where SSL_CERT_DIR points, beside the image's own.
    let cm = one(&objects, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["config.openshift.io/inject-trusted-cabundle"], "true");
    assert!(cm.get("data").is_none(), "the chart must not overwrite what the cluster injects");
    assert_eq!(volume("trusted-ca")["configMap"]["name"], cm["metadata"]["name"]);
    let values = yaml_file(&chart().join("values.yaml"));
    let dirs = format!("{}:{}", values["trustedCA"]["systemCertDir"].as_str().unwrap(), mount_of("trusted-ca"));
    assert_eq!(env(&objects, "SSL_CERT_DIR").unwrap(), dirs);

    // Archive and cache claims: access modes and keep policy from the values.
    assert!(a.contains(&format!("--archive-dir={}", mount_of("archive"))), "{a:?}");
    let claims = find(&objects, "PersistentVolumeClaim");
    assert_eq!(claims.len(), 2);
    for (volume_name, key) in [("cache", "cache"), ("archive", "archive")] {
        let claim_name = &volume(volume_name)["persistentVolumeClaim"]["claimName"];
        let claim = claims.iter().find(|c| &c["metadata"]["name"] == claim_name).expect("claim rendered");
        assert_eq!(claim["spec"]["accessModes"], json!([full[key]["accessMode"]]), "{key}");
        assert_eq!(claim["metadata"]["annotations"]["helm.sh/resource-policy"], "keep", "{key}");
    }

    // ServiceMonitor: selects the metrics Service and scrapes a port it has.
    let service = one(&objects, "Service");
    let sm = one(&objects, "ServiceMonitor");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][k], v, "ServiceMonitor selects {k}={v}");
    }
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    let port = sm["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(service["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == port));

    // NetworkPolicy: selects the operator pod, admits its admin port from the listed peers.
    let np = one(&objects, "NetworkPolicy");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in np["spec"]["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v);
    }
    assert_eq!(np["spec"]["ingress"][0]["from"], full["networkPolicy"]["from"]);
    let admin =
        c["ports"].as_array().unwrap().iter().find(|p| p["name"] == np["spec"]["ingress"][0]["ports"][0]["port"]);
    assert!(admin.is_some(), "the NetworkPolicy admits a port the container has");

    // Templated CRDs: the chart's crds/ documents, kept on uninstall.
    let crds = find(&objects, "CustomResourceDefinition");
    let source = std::fs::read_to_string(chart().join("crds/crds.yaml")).unwrap();
    let originals: Vec<Value> = source
        .split("\n---")
        .map(|d| d.trim_start_matches("---").trim())
        .filter(|d| !d.is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    assert_eq!(crds.len(), originals.len());
    for (crd, original) in crds.iter().zip(&originals) {
        assert_eq!(crd["spec"], original["spec"]);
        assert_eq!(crd["metadata"]["name"], original["metadata"]["name"]);
        assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
        assert_eq!(crd["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    }
}

/// The archive volume: off by default (no `--archive-dir`, so `file://` and `spec.from` are
/// refused); on, a claim from the values mounted where `--archive-dir` points, or the existing
/// claim named; a ReadWriteOnce archive volume needs the Recreate strategy and one replica.
#[test]
fn the_archive_volume_is_mounted_where_archive_dir_points() {
    let mounts = |objects: &[Value]| -> Vec<(String, String)> {
        container(objects)["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap().to_string(), m["mountPath"].as_str().unwrap().to_string()))
            .collect()
    };
    let claim_of = |objects: &[Value]| -> Option<String> {
        let pod = &one(objects, "Deployment")["spec"]["template"]["spec"];
        let v = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "archive")?;
        Some(v["persistentVolumeClaim"]["claimName"].as_str().unwrap().to_string())
    };
    let defaults = template(&[]);
    assert!(!args(&defaults).iter().any(|a| a.starts_with("--archive-dir")), "{:?}", args(&defaults));
    assert!(claim_of(&defaults).is_none() && !mounts(&defaults).iter().any(|(n, _)| n == "archive"));

    let on = template(&[
        "--set",
        "archive.enabled=true,archive.size=3Ti,archive.storageClassName=nfs,cache.accessMode=ReadWriteMany",
    ]);
    let (_, path) = mounts(&on).into_iter().find(|(n, _)| n == "archive").expect("the archive volume is mounted");
    assert!(args(&on).contains(&format!("--archive-dir={path}")), "{:?}", args(&on));
    let claim = claim_of(&on).unwrap();
    let pvc = find(&on, "PersistentVolumeClaim").into_iter().find(|c| c["metadata"]["name"] == claim).unwrap();
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "3Ti");
    assert_eq!(pvc["spec"]["storageClassName"], "nfs");
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    let deployment = one(&on, "Deployment");
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "a ReadWriteOnce archive volume");

    let existing = template(&["--set", "archive.enabled=true,archive.existingClaim=archives-from-the-hub"]);
    assert_eq!(claim_of(&existing).as_deref(), Some("archives-from-the-hub"));
    assert_eq!(find(&existing, "PersistentVolumeClaim").len(), 1, "only the cache's claim is made");
    assert!(args(&existing).iter().any(|a| a.starts_with("--archive-dir=")));

    let err = try_template(&["--set", "replicaCount=2,cache.accessMode=ReadWriteMany,archive.enabled=true"])
        .expect_err("two replicas on a ReadWriteOnce archive volume");
    assert!(err.contains("archive.accessMode ReadWriteMany"), "{err}");
    let two = template(&[
        "--set",
        "replicaCount=2,cache.accessMode=ReadWriteMany,archive.enabled=true,archive.accessMode=ReadWriteMany",
    ]);
    assert_eq!(one(&two, "Deployment")["spec"]["strategy"]["type"], "RollingUpdate");
    let err = try_template(&["--set", "archive.accessMode=ReadOnlyMany"]).expect_err("a mode the binary cannot write");
    assert!(err.contains("accessMode"), "{err}");
}

#[test]
fn watched_namespaces_reach_the_operator_and_get_their_roles() {
    let objects = template(&["--set", "watchNamespaces={team-a,team-b}"]);
    assert_eq!(env(&objects, "WATCH_NAMESPACES").unwrap(), "team-a,team-b");
    let role_namespaces: BTreeSet<&str> =
        find(&objects, "Role").iter().map(|r| r["metadata"]["namespace"].as_str().unwrap()).collect();
    for ns in ["team-a", "team-b"] {
        assert!(role_namespaces.contains(ns), "no Role in {ns}: {role_namespaces:?}");
    }
    let defaults = template(&[]);
    assert!(env(&defaults, "WATCH_NAMESPACES").is_none());
}

/// Bad values are refused by helm, naming the value, instead of by a crash-looping pod.
#[test]
fn the_values_schema_refuses_what_the_binary_would() {
    for (set, names) in [
        ("replicaCount=x", "replicaCount"),
        ("logFormat=yaml", "logFormat"),
        ("logLevel=verbose", "logLevel"),
        ("logLevel=info\\,chatty", "logLevel"),
        ("logLevel=kube=loud", "logLevel"),
        ("retryIntervalSeconds=0", "retryIntervalSeconds"),
        ("stallTimeoutSeconds=0", "stallTimeoutSeconds"),
        ("maxConcurrentRuns=0", "maxConcurrentRuns"),
        ("cache.accessMode=ReadOnlyMany", "accessMode"),
        ("openshift=maybe", "openshift"),
        ("replicas=2", "replicas"),
    ] {
        let err = try_template(&["--set", set]).expect_err(set);
        assert!(err.contains("values don't meet the specifications of the schema"), "{set}: {err}");
        assert!(err.contains(names), "{set}: the refusal does not name {names}: {err}");
    }
    for good in ["logLevel=WARN", "logLevel=info\\,imageset_operator=debug", "logLevel=off", "logFormat=plain"] {
        try_template(&["--set", good]).unwrap_or_else(|e| panic!("{good} refused: {e}"));
    }
    // The binary agrees on the log settings, read from the variables the chart sets.
    for (key, refused, accepted) in [
        ("logLevel", vec!["verbose", "info,chatty", "kube=loud"], vec!["WARN", "info,imageset_operator=debug", "off"]),
        ("logFormat", vec!["yaml"], vec!["plain", "json"]),
    ] {
        let probe = accepted[0];
        let objects = template(&["--set", &format!("{key}={}", probe.replace(',', "\\,"))]);
        let var = container(&objects)["env"].as_array().unwrap().iter().find(|e| e["value"] == probe).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_string();
        for (value, ok) in refused.iter().map(|v| (v, false)).chain(accepted.iter().map(|v| (v, true))) {
            let out = support::cli::bin().arg("version").env(&var, value).output().unwrap();
            assert_eq!(out.status.success(), ok, "{var}={value}: {}", text(&out));
        }
    }
    // What the schema cannot say, the templates do.
    let err = try_template(&["--set", "replicaCount=2"]).expect_err("two replicas on a ReadWriteOnce cache");
    assert!(err.contains("cache.accessMode ReadWriteMany"), "{err}");
    let err = try_template(&["--set", "replicaCount=2,cache.accessMode=ReadWriteMany,leaderElection=false"])
        .expect_err("two replicas without leader election");
    assert!(err.contains("leaderElection"), "{err}");
    let err = try_template(&["--set", "shards.cache=pvc"]).expect_err("shard pods sharing a ReadWriteOnce cache");
    assert!(err.contains("shards.cache: pvc needs") && err.contains("ReadWriteMany"), "{err}");
    try_template(&["--set", "shards.cache=pvc,cache.existingClaim=shared"])
        .expect("an existing claim is the admin's to size");
}

/// The ServiceMonitor CRD from the Prometheus Operator, as kube-prometheus-stack ships it.
fn service_monitor_crd() -> CustomResourceDefinition {
    let tgz = support::shared_data().join("helm/charts/kube-prometheus-stack-88.5.3.tgz");
    let file = std::fs::File::open(&tgz).unwrap_or_else(|e| panic!("{}: {e}", tgz.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("crds/crd-servicemonitors.yaml") {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            // The file opens with a comment naming its source: the CRD is the document after it.
            let doc = text.split("\n---").find(|d| d.contains("kind: CustomResourceDefinition")).unwrap();
            return serde_saphyr::from_str(doc.trim_start_matches("---")).unwrap();
        }
    }
    panic!("no crd-servicemonitors.yaml in {}", tgz.display());
}

async fn install_crd(client: &kube::Client, crd: &CustomResourceDefinition) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap();
    api.patch(&name, &PatchParams::apply("imageset-operator-tests").force(), &Patch::Apply(crd)).await.unwrap();
    let cond = kube::runtime::wait::conditions::is_crd_established();
    tokio::time::timeout(std::time::Duration::from_secs(30), kube::runtime::wait::await_condition(api, &name, cond))
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not established"))
        .unwrap();
}

/// Server-side applies `obj` as a dry run, in its namespace (created if missing).
async fn dry_apply(client: &kube::Client, obj: &Value) -> Result<(), String> {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), obj["apiVersion"].as_str().unwrap().to_string()),
    };
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, obj["kind"].as_str().unwrap());
    let (ar, caps) = pinned_kind(client, &gvk).await.map_err(|e| format!("{gvk:?} not served: {e}"))?;
    let api: Api<DynamicObject> = match (&caps.scope, obj["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => {
            cluster::ensure_namespace(client, ns).await;
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        (Scope::Cluster, None) => Api::all_with(client.clone(), &ar),
        (scope, ns) => return Err(format!("namespace {ns:?} on a {scope:?} kind")),
    };
    let name = obj["metadata"]["name"].as_str().unwrap();
    // force: our CRDs are already installed by the test world under another field manager.
    let params = PatchParams::apply("helm-chart-test").dry_run().force();
    api.patch(name, &params, &Patch::Apply(obj)).await.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_apiserver() {
    let cp = cluster::shared();
    let client = cp.client().await;
    install_crd(&client, &service_monitor_crd()).await;
    let tmp = support::temp_dir("chart-");
    let mut kinds = BTreeSet::new();
    let mut refused = Vec::new();
    let mut applied = 0;
    for (name, values, apis) in value_sets(tmp.path()) {
        let objects = template(&strs(&[values, apis].concat()));
        assert!(!objects.is_empty(), "{name}: nothing rendered");
        for obj in &objects {
            kinds.insert(obj["kind"].as_str().unwrap().to_string());
            match dry_apply(&client, obj).await {
                Ok(()) => applied += 1,
                Err(e) => refused.push(format!("{name}: {} {}: {e}", obj["kind"], obj["metadata"]["name"])),
            }
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    for kind in [
        "Deployment",
        "ServiceAccount",
        "Service",
        "PersistentVolumeClaim",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "ServiceMonitor",
        "NetworkPolicy",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
    ] {
        assert!(kinds.contains(kind), "no {kind} among the applied kinds {kinds:?}");
    }
    eprintln!("{applied} objects of {} kinds accepted (dry run)", kinds.len());

    // helm itself against the same API server: it discovers the capabilities (the admission
    // policy renders), checks every object with the server, and prints the notes.
    let chart = chart();
    let out = helm(&[
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
        "--dry-run=server",
        "--kubeconfig",
        cp.kubeconfig.to_str().unwrap(),
    ]);
    let said = text(&out);
    assert!(out.status.success(), "helm install --dry-run=server: {said}");
    assert!(said.contains("kind: ValidatingAdmissionPolicy\n"), "no admission policy discovered: {said}");
    let values = yaml_file(&chart.join("values.yaml"));
    let placeholder =
        format!("image.repository is the placeholder {}", values["image"]["repository"].as_str().unwrap());
    assert!(said.contains(&placeholder), "the notes do not warn about the placeholder image: {said}");
}

/// The trusted CA bundle reaches the binary the way the chart wires it: the ConfigMap key as
/// `ca-bundle.crt` in the mounted directory, and SSL_CERT_DIR as rendered (the image's own
/// directory, then that one). A registry signed by a private CA is refused without it and
/// mirrored to with it, no --registry-ca flag involved.
#[test]
fn the_trusted_ca_bundle_is_trusted_through_ssl_cert_dir() {
    use support::content::{Format, Pusher};
    use support::registry::{Registry, RegistryOptions};
    let objects = template(&["--set", "trustedCA.enabled=true"]);
    let c = container(&objects);
    let mount = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "trusted-ca").unwrap();
    let mount_path = mount["mountPath"].as_str().unwrap();
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "trusted-ca").unwrap();
    let file = volume["configMap"]["items"][0]["path"].as_str().unwrap();
    let rendered = env(&objects, "SSL_CERT_DIR").unwrap();

    let reg = Registry::start(RegistryOptions { tls: true, ..Default::default() });
    Pusher::new(&reg).image("team/app", "1.0", Format::Oci, ("linux", "amd64"), &[(2, 1000)]);
    let tmp = support::temp_dir("chart-ca-");
    let ca_dir = tmp.path().join("trusted-ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::write(ca_dir.join(file), &reg.ca.as_ref().unwrap().ca_pem).unwrap();
    let ssl_cert_dir = rendered.as_str().unwrap().replace(mount_path, ca_dir.to_str().unwrap());
    assert_ne!(ssl_cert_dir, rendered.as_str().unwrap(), "SSL_CERT_DIR names the mount");
    let isc = support::cli::write_isc(tmp.path(), &[format!("{}/team/app:1.0", reg.host)]);
    let mirror = |run: &str, cert_dir: Option<&str>| {
        let mut cmd = support::cli::bin();
        cmd.args(["mirror", "-c", &isc, &format!("docker://{}/{run}", reg.host)])
            .arg(format!("--workspace=file://{}", tmp.path().join(run).display()))
            .arg("--cache-dir")
            .arg(tmp.path().join(run).join("cache"))
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        if let Some(d) = cert_dir {
            cmd.env("SSL_CERT_DIR", d);
        }
        cmd.output().unwrap()
    };
    let refused = mirror("without", None);
    assert!(!refused.status.success(), "a private CA was trusted without the bundle:\n{}", text(&refused));
    assert!(text(&refused).contains("UnknownIssuer"), "refused for another reason:\n{}", text(&refused));
    let trusted = mirror("with", Some(&ssl_cert_dir));
    assert!(trusted.status.success(), "SSL_CERT_DIR={ssl_cert_dir}:\n{}", text(&trusted));
    let copied = Command::new(support::require("skopeo"))
        .args(["inspect", "--cert-dir"])
        .arg(reg.cert_dir.as_ref().unwrap())
        .arg(format!("docker://{}/with/team/app:1.0", reg.host))
        .output()
        .unwrap();
    assert!(copied.status.success(), "the mirrored image is not there: {}", text(&copied));
}

/// Every value of values.yaml, down to its leaves (empty maps and lists included), has a row in
/// the chart README's table, and every row names a value that exists; the schema knows each.
#[test]
fn every_value_is_documented_and_in_the_schema() {
    // Kubernetes structures passed through whole: one row each.
    const WHOLE: [&str; 3] = ["resources", "podSecurityContext", "securityContext"];
    fn leaves(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
        match v.as_object() {
            Some(m) if !m.is_empty() && !WHOLE.contains(&prefix) => {
                for (k, child) in m {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    leaves(&path, child, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }
    let values = yaml_file(&chart().join("values.yaml"));
    let mut keys = BTreeSet::new();
    leaves("", &values, &mut keys);
    let readme = std::fs::read_to_string(chart().join("README.md")).unwrap();
    let rows: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split('`').next().unwrap().to_string())
        .collect();
    assert_eq!(rows, keys, "README rows vs values.yaml");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap()).unwrap();
    for key in &keys {
        let mut node = &schema;
        for part in key.split('.') {
            node = &node["properties"][part];
        }
        assert!(node.is_object(), "{key} is not in values.schema.json");
    }
}

/// `helm package` follows the crds/ link: the archive users install from holds the CRDs' text,
/// and templated CRDs render from it.
#[test]
fn the_packaged_chart_carries_the_crds() {
    let tmp = support::temp_dir("chart-package-");
    let chart = chart();
    let out = helm(&["package", chart.to_str().unwrap(), "--destination", tmp.path().to_str().unwrap()]);
    assert!(out.status.success(), "helm package: {}", text(&out));
    let version = yaml_file(&chart.join("Chart.yaml"))["version"].as_str().unwrap().to_string();
    let tgz = tmp.path().join(format!("{RELEASE}-{version}.tgz"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&tgz).unwrap()));
    let mut packaged = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("crds/crds.yaml") {
            assert!(entry.header().entry_type().is_file(), "crds/crds.yaml is packaged as a link");
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            packaged = Some(text);
        }
    }
    let source = std::fs::read_to_string(chart.join("crds/crds.yaml")).unwrap();
    assert_eq!(packaged.as_deref(), Some(source.as_str()), "the packaged CRDs differ from crds/crds.yaml");
    let from_package = template_of(&tgz, &["--set", "crds.templated=true"]).unwrap();
    let from_dir = template(&["--set", "crds.templated=true"]);
    assert_eq!(find(&from_package, "CustomResourceDefinition"), find(&from_dir, "CustomResourceDefinition"));
    assert_eq!(
        find(&from_dir, "CustomResourceDefinition").len(),
        source.matches("kind: CustomResourceDefinition").count()
    );
}
