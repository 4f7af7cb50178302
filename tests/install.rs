//! Installing the operator as a cluster admin would, without Helm.
//!
//! kustomize: `config/default` (built by kustomize from its Go module) installs the CRDs, the
//! RBAC made from `src/controller/rbac.rs`, the Deployment and the rest, and every object is
//! accepted by a real kube-apiserver (server-side apply, dry run, strict field validation); moved
//! to another namespace and name prefix, its roles are exactly those the rule list gives that
//! installation; `config/samples` applies in any namespace.
//!
//! OLM: `bundle/` (a ClusterServiceVersion, the CRDs, `metadata/annotations.yaml`) and
//! `config/crd` are generated from the code (`IMAGESET_REGENERATE=1` rewrites them, a
//! difference fails); `scripts/build-bundle` makes a bundle image (an OCI layout) that is pushed
//! to a registry, rendered by real `opm` into a file-based catalog that `opm validate` accepts,
//! and served by `opm serve`, which answers for the package with the bundle we built.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use imageset_operator::controller::rbac::{self, Install, RULES, Scope};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Scope as ApiScope, pinned_kind};
use serde_json::{Value, json};
use support::cluster;
use support::image::{ImageConfig, extract_image};
use support::operator::{OPERATOR_NS, documents};
use support::opm::OpmServer;
use support::registry::{Registry, RegistryOptions};

/// kustomize, built from its Go module into the test tools' cache.
const KUSTOMIZE_VERSION: &str = "v5.8.2";
/// The OLM package and its one channel.
const PACKAGE: &str = "imageset-operator";
/// Named as OLM's channel naming convention recommends.
const CHANNEL: &str = "candidate";
/// Where users will find the project; nothing is published yet.
const PROJECT_URL: &str = "https://example.com/imageset-operator";
const REGENERATE: &str = "IMAGESET_REGENERATE=1 cargo test --test install";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A Go tool cached as `name` under the test tools' bin directory, made by `build` (which gets
/// a scratch directory and returns the binary it built there, or the error with the command to
/// run by hand) the first time.
fn go_tool(name: &str, build: impl FnOnce(&Path) -> Result<PathBuf, String>) -> PathBuf {
    let dir = support::bin_dir();
    let exe = dir.join(name);
    if exe.exists() {
        return exe;
    }
    let scratch = support::temp_dir("go-tool-");
    let built = build(scratch.path()).unwrap_or_else(|e| panic!("building {name} failed: {e}"));
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!("{name}.tmp{}", std::process::id()));
    std::fs::copy(built, &tmp).unwrap();
    std::fs::rename(&tmp, &exe).unwrap();
    exe
}

/// Runs `go` with `args` in `dir` for a static, module-mode build; Err: its output and `by_hand`.
fn go(dir: &Path, args: &[&str], env: &[(&str, &Path)], by_hand: &str) -> Result<(), String> {
    let out = Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=mod")
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("go not runnable ({e}); by hand:\n    {by_hand}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!("go {args:?}:\n{}\nby hand:\n    {by_hand}", String::from_utf8_lossy(&out.stderr)))
}

/// kustomize, built with `go install` from its pinned module.
fn kustomize() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let name = format!("kustomize-{KUSTOMIZE_VERSION}");
        go_tool(&name, |scratch| {
            let module = format!("sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}");
            let by_hand = format!(
                "GOBIN=<dir> CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath {module}\n    then move <dir>/kustomize to {}",
                support::bin_dir().join(&name).display()
            );
            go(scratch, &["install", "-trimpath", &module], &[("GOBIN", scratch)], &by_hand)?;
            Ok(scratch.join("kustomize"))
        })
    })
}

/// operator-framework/api's validators, the library `operator-sdk bundle validate` runs, at the
/// version opm v1.73.0 (scripts/install-test-deps) is built with.
const OLM_API_VERSION: &str = "v0.45.0";

/// A small checker of a bundle directory: every validator result as JSON; exit 1 on errors.
const BUNDLE_VALIDATE_GO: &str = r#"package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
)

func main() {
	bundle, err := manifests.GetBundleFromDir(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "load bundle:", err)
		os.Exit(2)
	}
	validators := append(validation.DefaultBundleValidators,
		validation.GoodPracticesValidator,
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.AlphaDeprecatedAPIsValidator)
	type item struct{ Level, Type, Field, Detail string }
	items := []item{}
	failed := false
	for _, r := range validators.Validate(bundle) {
		for _, e := range append(r.Errors, r.Warnings...) {
			items = append(items, item{string(e.Level), string(e.Type), e.Field, e.Error()})
		}
		failed = failed || r.HasError()
	}
	json.NewEncoder(os.Stdout).Encode(items)
	if failed {
		os.Exit(1)
	}
}
"#;

/// The bundle checker, built against operator-framework/api.
fn bundle_validate() -> PathBuf {
    let hash = support::sha256(BUNDLE_VALIDATE_GO.as_bytes());
    let name = format!("bundle-validate-{OLM_API_VERSION}-{}", &hash[7..19]);
    go_tool(&name, |scratch| {
        std::fs::write(scratch.join("main.go"), BUNDLE_VALIDATE_GO).unwrap();
        let module = format!("github.com/operator-framework/api@{OLM_API_VERSION}");
        let by_hand = format!(
            "go mod init bundle-validate && go get {module} && go build (main.go: BUNDLE_VALIDATE_GO in tests/install.rs)"
        );
        go(scratch, &["mod", "init", "imageset-operator-testtools/bundle-validate"], &[], &by_hand)?;
        go(scratch, &["get", &module], &[], &by_hand)?;
        go(scratch, &["mod", "tidy"], &[], &by_hand)?;
        go(scratch, &["build", "-trimpath", "-o", "bundle-validate", "."], &[], &by_hand)?;
        Ok(scratch.join("bundle-validate"))
    })
}

/// The objects `kustomize build dir` makes.
fn kustomize_build(dir: &Path) -> Vec<Value> {
    let out = Command::new(kustomize()).arg("build").arg(dir).output().expect("run kustomize");
    assert!(out.status.success(), "kustomize build {}:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
    documents(&String::from_utf8(out.stdout).unwrap())
}

fn kind(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace(obj: &Value) -> Option<&str> {
    obj["metadata"]["namespace"].as_str()
}

/// Server-side applies `obj` as a dry run with strict field validation, in its namespace or
/// else `default_ns` (created if missing). Err: what the apiserver said.
async fn dry_apply(client: &kube::Client, obj: &Value, default_ns: &str) -> Result<(), String> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind(obj));
    let (ar, caps) = pinned_kind(client, &gvk).await.map_err(|e| format!("{gvk:?} not served: {e}"))?;
    let api: Api<DynamicObject> = match caps.scope {
        ApiScope::Namespaced => {
            let ns = namespace(obj).unwrap_or(default_ns);
            cluster::ensure_namespace(client, ns).await;
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        ApiScope::Cluster if namespace(obj).is_none() => Api::all_with(client.clone(), &ar),
        ApiScope::Cluster => return Err("a namespace on a cluster-scoped kind".into()),
    };
    // force: the test world installed our CRDs under another field manager.
    let params = PatchParams::apply("imageset-install-test").dry_run().force().validation_strict();
    api.patch(name(obj), &params, &Patch::Apply(obj)).await.map(drop).map_err(|e| e.to_string())
}

/// Dry-run applies every object; fails listing each refusal.
async fn all_accepted(objects: &[Value], default_ns: &str) {
    let client = cluster::shared().client().await;
    let mut refused = Vec::new();
    for obj in objects {
        if let Err(e) = dry_apply(&client, obj, default_ns).await {
            refused.push(format!("{} {}: {e}", kind(obj), name(obj)));
        }
    }
    assert!(refused.is_empty(), "refused by the apiserver:\n{}", refused.join("\n"));
}

/// Every number as a float: kustomize writes `0.0` as `0`.
fn floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(floats).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), floats(v))).collect()),
        other => other.clone(),
    }
}

/// Without `metadata.labels` (the RBAC generator labels with the installation's name;
/// kustomize's prefix leaves labels alone).
fn unlabelled(obj: &Value) -> Value {
    let mut o = obj.clone();
    o["metadata"].as_object_mut().unwrap().remove("labels");
    o
}

/// What a kustomize build of `config/default` moved to `ns` with `prefix` must hold: the CRDs of
/// crds/crds.yaml, exactly the roles and bindings the rule list gives that installation (and
/// the people's aggregated roles), everything else in `ns`, and references that resolve.
fn check_install(objects: &[Value], ns: &str, prefix: &str) {
    let crds: Vec<Value> = objects.iter().filter(|o| kind(o) == "CustomResourceDefinition").map(floats).collect();
    let want_crds = documents(&read("crds/crds.yaml"));
    assert_eq!(crds.len(), want_crds.len());
    for want in &want_crds {
        assert!(crds.contains(&floats(want)), "CRD {} differs from crds/crds.yaml", name(want));
    }
    let sa = format!("{prefix}imageset-operator");
    let install = Install { name: &sa, namespace: ns, service_account: &sa, watch_namespaces: &[] };
    let (roles, bindings) = rbac::manifests(&install);
    let want_rbac: Vec<Value> = documents(&(roles + "---\n" + &bindings)).iter().map(unlabelled).collect();
    let rbac_kinds = ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];
    let got_rbac: Vec<Value> = objects.iter().filter(|o| rbac_kinds.contains(&kind(o))).map(unlabelled).collect();
    for want in &want_rbac {
        assert!(got_rbac.contains(want), "{} {} missing or different:\n{want:#}", kind(want), name(want));
    }
    for extra in got_rbac.iter().filter(|o| !want_rbac.contains(o)) {
        // Only the people's roles, aggregated into admin, edit and view, and never bound.
        assert_eq!(kind(extra), "ClusterRole", "{extra:#}");
        let aggregated = objects.iter().find(|o| kind(o) == "ClusterRole" && name(o) == name(extra)).unwrap();
        let labels = aggregated["metadata"]["labels"].as_object().unwrap();
        assert!(labels.keys().any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-")), "{extra:#}");
    }
    let fixed = rbac::fixed_namespaces();
    for obj in objects {
        match namespace(obj) {
            Some(n) if fixed.contains(&n) => assert!(["Role", "RoleBinding"].contains(&kind(obj)), "{obj:#}"),
            Some(n) => assert_eq!(n, ns, "{} {}", kind(obj), name(obj)),
            None => {}
        }
    }
    let of = |k: &str| -> Vec<&Value> { objects.iter().filter(|o| kind(o) == k).collect() };
    assert_eq!(of("Namespace").iter().map(|n| name(n)).collect::<Vec<_>>(), [ns]);
    assert_eq!(of("ServiceAccount").iter().map(|n| name(n)).collect::<Vec<_>>(), [sa.as_str()]);
    let [deployment] = of("Deployment")[..] else { panic!("one Deployment") };
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], json!(sa));
    let claims: BTreeSet<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .collect();
    let pvcs: BTreeSet<&str> = of("PersistentVolumeClaim").into_iter().map(name).collect();
    assert!(!claims.is_empty() && claims == pvcs, "claims {claims:?}, PVCs {pvcs:?}");
    let labels = &deployment["spec"]["selector"]["matchLabels"];
    for svc in of("Service") {
        assert_eq!(&svc["spec"]["selector"], labels, "Service {} selects no operator pod", name(svc));
    }
    let policies: BTreeSet<&str> = of("ValidatingAdmissionPolicy").into_iter().map(name).collect();
    for b in of("ValidatingAdmissionPolicyBinding") {
        assert!(policies.contains(b["spec"]["policyName"].as_str().unwrap()), "{b:#}");
    }
}

#[tokio::test]
async fn config_default_installs_everything_and_the_apiserver_accepts_it() {
    let objects = kustomize_build(&root().join("config/default"));
    check_install(&objects, OPERATOR_NS, "");
    all_accepted(&objects, "default").await;
    let kinds: BTreeSet<&str> = objects.iter().map(kind).collect();
    eprintln!("config/default: {} objects of {} kinds accepted (dry run): {kinds:?}", objects.len(), kinds.len());
}

/// What a user edits in `config/default/kustomization.yaml` to install elsewhere.
#[tokio::test]
async fn config_default_moves_to_another_namespace_and_name_prefix() {
    let tmp = support::temp_dir("kustomize-");
    let config = tmp.path().join("config");
    copy_tree(&root().join("config"), &config);
    let file = config.join("default/kustomization.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let edits = [
        ("      namespace: imageset-operator\n", "      namespace: team-a\n"),
        ("namePrefix: \"\"\n", "namePrefix: a-\n"),
    ];
    let mut edited = text;
    for (from, to) in edits {
        assert_eq!(edited.matches(from).count(), 1, "{from:?} in config/default/kustomization.yaml");
        edited = edited.replace(from, to);
    }
    std::fs::write(&file, edited).unwrap();
    let objects = kustomize_build(&config.join("default"));
    check_install(&objects, "team-a", "a-");
    all_accepted(&objects, "default").await;
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let to = dst.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &to);
        } else {
            std::fs::copy(&p, &to).unwrap();
        }
    }
}

/// The samples name no namespace, apply in any, and are the CSV's `alm-examples`.
#[tokio::test]
async fn samples_apply_in_any_namespace() {
    let objects = kustomize_build(&root().join("config/samples"));
    assert!(!objects.is_empty());
    for obj in &objects {
        assert_eq!(namespace(obj), None, "{} {} names a namespace", kind(obj), name(obj));
    }
    for ns in ["imageset-operator", "samples-elsewhere"] {
        all_accepted(&objects, ns).await;
    }
    let examples: Vec<Value> =
        serde_json::from_str(csv()["metadata"]["annotations"]["alm-examples"].as_str().unwrap()).unwrap();
    assert_eq!(by_name(examples), by_name(objects));
}

/// Objects in the order of their kind and name.
fn by_name(mut objects: Vec<Value>) -> Vec<Value> {
    objects.sort_by_key(|o| (kind(o).to_string(), name(o).to_string()));
    objects
}

// ---- the OLM bundle, made from the code ----

/// The samples as `config/samples/kustomization.yaml` lists them.
fn samples() -> Vec<Value> {
    let k: Value = serde_saphyr::from_str(&read("config/samples/kustomization.yaml")).unwrap();
    let files = k["resources"].as_array().expect("resources");
    files.iter().flat_map(|f| documents(&read(&format!("config/samples/{}", f.as_str().unwrap())))).collect()
}

/// The first sentence of a schema description, on one line.
fn sentence(text: &str) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.find(". ") {
        Some(i) => one[..=i].to_string(),
        None => one,
    }
}

/// A CRD's entry under `customresourcedefinitions.owned`: its storage version, the spec
/// fields it requires and the status fields users read, described as its schema does.
fn owned(crd: &Value) -> Value {
    let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
    let (display, description) = match kind {
        "ImageSetConfiguration" => (
            "Image Set Configuration",
            "What to mirror (oc-mirror v2's mirror block) and where to. The operator copies releases, operator \
             catalogs and images to the destination and applies the ImageDigestMirrorSets, ImageTagMirrorSets, \
             CatalogSources and UpdateService they need.",
        ),
        "DeleteImageSetConfiguration" => (
            "Delete Image Set Configuration",
            "Images to remove from a mirror registry (oc-mirror v2's delete block). Nothing is deleted until \
             status.planDigest is copied into spec.approvedPlanDigest.",
        ),
        other => panic!("no display name and description for the CRD of {other}: add them here"),
    };
    let version = crd["spec"]["versions"].as_array().unwrap().iter().find(|v| v["storage"] == true).unwrap();
    let schema = &version["schema"]["openAPIV3Schema"]["properties"];
    let describe = |part: &str, path: &str, descriptors: &[&str]| {
        let field = &schema[part]["properties"][path];
        assert!(field.is_object(), "{kind} has no {part}.{path}");
        json!({"path": path, "displayName": path, "description": sentence(field["description"].as_str().unwrap_or_default()),
               "x-descriptors": descriptors})
    };
    let required = schema["spec"]["required"].as_array().cloned().unwrap_or_default();
    let spec: Vec<Value> = required
        .iter()
        .map(|p| describe("spec", p.as_str().unwrap(), &["urn:alm:descriptor:com.tectonic.ui:text"]))
        .collect();
    let status = vec![
        describe("status", "conditions", &["urn:alm:descriptor:io.kubernetes.conditions"]),
        describe("status", "planDigest", &["urn:alm:descriptor:text"]),
    ];
    json!({"name": crd["metadata"]["name"], "version": version["name"], "kind": kind, "displayName": display,
           "description": description, "specDescriptors": spec, "statusDescriptors": status})
}

/// The rules of the scopes `scopes` accepts, as PolicyRules.
fn policy_rules(scopes: impl Fn(Scope) -> bool) -> Vec<Value> {
    let rules = RULES.iter().filter(|r| scopes(r.scope));
    rules
        .map(|r| {
            let mut rule = json!({"apiGroups": [r.group], "resources": [r.resource], "verbs": r.verbs});
            if !r.names.is_empty() {
                rule["resourceNames"] = json!(r.names);
            }
            rule
        })
        .collect()
}

/// The Deployment of `config/manager` as OLM runs it: watching the OperatorGroup's target
/// namespaces (OLM's `olm.targetNamespaces` annotation, empty for all), the cache on an
/// emptyDir (a bundle cannot hold a PersistentVolumeClaim; a Subscription's `config.volumes`
/// replaces `cache` with one), and the fsGroup left to the cluster (OpenShift's restricted-v2
/// SCC refuses a fixed one; an emptyDir is writable by any user).
fn csv_deployment() -> Value {
    let mut d = documents(&read("config/manager/deployment.yaml")).remove(0);
    let pod = &mut d["spec"]["template"]["spec"];
    let security = pod["securityContext"].as_object_mut().unwrap();
    security.remove("fsGroup");
    security.remove("fsGroupChangePolicy");
    for v in pod["volumes"].as_array_mut().unwrap() {
        if v.get("persistentVolumeClaim").is_some() {
            *v = json!({"name": v["name"], "emptyDir": {}});
        }
    }
    let env = pod["containers"][0]["env"].as_array_mut().unwrap();
    assert!(!env.iter().any(|e| e["name"] == "WATCH_NAMESPACES"));
    env.push(json!({"name": "WATCH_NAMESPACES",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['olm.targetNamespaces']"}}}));
    json!({"name": d["metadata"]["name"], "label": d["metadata"]["labels"], "spec": d["spec"]})
}

const DESCRIPTION: &str = "\
The ImageSet operator brings oc-mirror v2 into the cluster. An ImageSetConfiguration holds oc-mirror's \
`mirror:` block unchanged (releases, operator catalogs, additional images, blocked images) and a \
destination registry; the operator resolves it, copies the images through a cache, and applies the \
ImageDigestMirrorSets, ImageTagMirrorSets, CatalogSources, UpdateService and release signatures the \
mirror needs. It checks upstream again on a schedule. A DeleteImageSetConfiguration removes images from \
a mirror registry once its plan is approved.

Install modes: the operator reconciles image sets in the OperatorGroup's target namespaces (all of them \
with AllNamespaces). Only image sets in the operator's own namespace may produce cluster-wide objects \
(set ALLOWED_NAMESPACES in the Subscription's config to allow others).

Permissions: OLM grants the CSV's namespaced permissions in the target namespaces; the Roles the \
operator needs in openshift-config-managed, openshift-marketplace and openshift-update-service (release \
signatures, CatalogSources, UpdateServices) cannot be named by namespace in a bundle, so they are \
cluster permissions here.

The cache is an emptyDir: give the Subscription a `config.volumes` entry named `cache` backed by a \
PersistentVolumeClaim to keep it across restarts.";

/// The ClusterServiceVersion, from the CRDs, the samples, the Deployment of `config/manager`
/// and the rule list.
fn csv() -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let deployment = csv_deployment();
    let pod = &deployment["spec"]["template"]["spec"];
    let sa = pod["serviceAccountName"].clone();
    let image = pod["containers"][0]["image"].clone();
    let icon = base64::engine::general_purpose::STANDARD.encode(read("bundle/icon.svg"));
    let owned: Vec<Value> = documents(&read("crds/crds.yaml")).iter().map(owned).collect();
    let modes = ["OwnNamespace", "SingleNamespace", "MultiNamespace", "AllNamespaces"];
    json!({
        "apiVersion": "operators.coreos.com/v1alpha1",
        "kind": "ClusterServiceVersion",
        "metadata": {
            "name": format!("{PACKAGE}.v{version}"),
            "annotations": {
                "alm-examples": serde_json::to_string_pretty(&samples()).unwrap(),
                "capabilities": "Basic Install",
                "categories": "Developer Tools",
                "containerImage": image,
                "description": "Mirrors OpenShift releases, operator catalogs and images into disconnected registries, driven by ImageSetConfiguration resources.",
                "operatorframework.io/suggested-namespace": OPERATOR_NS,
                "features.operators.openshift.io/disconnected": "true",
                "operators.openshift.io/infrastructure-features": "[\"disconnected\"]",
                "repository": PROJECT_URL,
                "support": "imageset-operator maintainers (placeholder)",
            },
        },
        "spec": {
            "displayName": "ImageSet Operator",
            "description": DESCRIPTION,
            "version": version,
            "maturity": "alpha",
            "provider": {"name": "imageset-operator maintainers (placeholder)", "url": PROJECT_URL},
            "maintainers": [{"name": "imageset-operator maintainers (placeholder)", "email": "maintainers@example.com"}],
            "links": [
                {"name": "Source and documentation", "url": PROJECT_URL},
                {"name": "oc-mirror v2 (what it runs in the cluster)", "url": "https://github.com/openshift/oc-mirror"},
            ],
            "keywords": ["openshift", "mirror", "disconnected", "oc-mirror", "registry"],
            "icon": [{"base64data": icon, "mediatype": "image/svg+xml"}],
            "installModes": modes.iter().map(|m| json!({"type": m, "supported": true})).collect::<Vec<_>>(),
            "install": {
                "strategy": "deployment",
                "spec": {
                    "deployments": [deployment],
                    "permissions": [{"serviceAccountName": sa,
                        "rules": policy_rules(|s| matches!(s, Scope::Watched | Scope::Operator))}],
                    "clusterPermissions": [{"serviceAccountName": sa,
                        "rules": policy_rules(|s| matches!(s, Scope::Cluster | Scope::Fixed(_)))}],
                },
            },
            "customresourcedefinitions": {"owned": owned},
        },
    })
}

const GENERATED: &str = "# Generated by tests/install.rs from the code; do not edit: regenerate with\n";

fn generated_yaml(value: &Value) -> String {
    format!("{GENERATED}#     {REGENERATE}\n{}", serde_saphyr::to_string(value).unwrap())
}

/// The annotations of the bundle, also its image's labels.
fn bundle_annotations() -> Vec<(&'static str, &'static str)> {
    vec![
        ("operators.operatorframework.io.bundle.mediatype.v1", "registry+v1"),
        ("operators.operatorframework.io.bundle.manifests.v1", "manifests/"),
        ("operators.operatorframework.io.bundle.metadata.v1", "metadata/"),
        ("operators.operatorframework.io.bundle.package.v1", PACKAGE),
        ("operators.operatorframework.io.bundle.channels.v1", CHANNEL),
        ("operators.operatorframework.io.bundle.channel.default.v1", CHANNEL),
    ]
}

/// Every generated file with what it must hold.
fn generated() -> Vec<(String, String)> {
    let mut out = vec![("config/crd/crds.yaml".to_string(), read("crds/crds.yaml"))];
    for crd in documents(&read("crds/crds.yaml")) {
        out.push((format!("bundle/manifests/{}.crd.yaml", name(&crd)), generated_yaml(&crd)));
    }
    out.push((format!("bundle/manifests/{PACKAGE}.clusterserviceversion.yaml"), generated_yaml(&csv())));
    // The metrics Service of config/manager; OLM puts it in the operator's namespace.
    let service = documents(&read("config/manager/service.yaml")).remove(0);
    out.push((format!("bundle/manifests/{}_v1_service.yaml", name(&service)), generated_yaml(&service)));
    let lines: String = bundle_annotations().iter().map(|(k, v)| format!("  {k}: {v}\n")).collect();
    out.push((
        "bundle/metadata/annotations.yaml".into(),
        format!("{GENERATED}#     {REGENERATE}\nannotations:\n{lines}"),
    ));
    out
}

#[test]
fn config_crd_and_the_bundle_are_made_from_the_code() {
    let regenerate = std::env::var_os("IMAGESET_REGENERATE").is_some();
    let mut stale = Vec::new();
    let files = generated();
    for (rel, want) in &files {
        let path = root().join(rel);
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, want).unwrap();
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(rel.clone());
        }
    }
    // Nothing else in the bundle's manifests and metadata: a stale CRD would ship.
    for dir in ["bundle/manifests", "bundle/metadata"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let rel = format!("{dir}/{}", e.unwrap().file_name().to_string_lossy());
            assert!(files.iter().any(|(f, _)| *f == rel), "{rel} is not generated: remove it");
        }
    }
    assert!(stale.is_empty(), "out of date with the code: {stale:?}; regenerate with:\n    {REGENERATE}");
}

/// The bundle passes the validators of operator-framework/api (as `operator-sdk bundle
/// validate` runs them, with the good-practice, capability, category and deprecated-API
/// checks) without an error or a warning.
#[test]
fn the_bundle_passes_the_olm_validators() {
    let out = Command::new(bundle_validate()).arg(root().join("bundle")).output().unwrap();
    let results: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bundle-validate: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success() && results.is_empty(), "bundle-validate ({}):\n{results:#?}", out.status);
}

/// The bundle image: built by scripts/build-bundle, pushed, rendered by opm into a catalog that
/// opm validates and serves.
#[test]
fn the_bundle_image_renders_into_a_catalog_opm_validates_and_serves() {
    let reg = Registry::start(RegistryOptions::default());
    let tmp = support::temp_dir("bundle-");
    let layout = tmp.path().join("layout");
    let operator_image = format!("{}/imageset-operator:v{}", reg.host, env!("CARGO_PKG_VERSION"));
    let out = Command::new(root().join("scripts/build-bundle")).arg(&layout).arg(&operator_image).output().unwrap();
    assert!(out.status.success(), "scripts/build-bundle:\n{}", String::from_utf8_lossy(&out.stderr));
    let tag = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(tag, env!("CARGO_PKG_VERSION"));
    // Reproducible: a second build is the same image, byte for byte.
    let again = tmp.path().join("again");
    let out = Command::new(root().join("scripts/build-bundle")).arg(&again).arg(&operator_image).output().unwrap();
    assert!(out.status.success(), "scripts/build-bundle:\n{}", String::from_utf8_lossy(&out.stderr));
    let index = |dir: &Path| std::fs::read(dir.join("index.json")).unwrap();
    assert_eq!(index(&layout), index(&again), "two builds of the bundle image differ");
    let reference = format!("{}/{PACKAGE}-bundle:v{tag}", reg.host);
    let mut skopeo = Command::new(support::require("skopeo"));
    skopeo.args(["copy", "--dest-tls-verify=false"]).arg(format!("oci:{}:{tag}", layout.display()));
    let out = skopeo.arg(format!("docker://{reference}")).output().unwrap();
    assert!(out.status.success(), "skopeo copy:\n{}", String::from_utf8_lossy(&out.stderr));

    // What a registry client sees: the labels OLM reads, and the bundle's files.
    let rootfs = tmp.path().join("bundle-rootfs");
    let config = extract_image(&reg, &reference, &rootfs);
    for (k, v) in bundle_annotations() {
        assert_eq!(config.labels.get(k).map(String::as_str), Some(v), "label {k}");
    }
    let csv_file = format!("manifests/{PACKAGE}.clusterserviceversion.yaml");
    let shipped = documents(&std::fs::read_to_string(rootfs.join(&csv_file)).unwrap()).remove(0);
    let mut want = csv();
    let image = json!(operator_image);
    want["metadata"]["annotations"]["containerImage"] = image.clone();
    want["spec"]["install"]["spec"]["deployments"][0]["spec"]["template"]["spec"]["containers"][0]["image"] = image;
    assert_eq!(shipped, want, "the CSV in the image is not the committed one with the operator image set");

    // opm render: the bundle as a catalog sees it.
    let out = Command::new(support::require("opm"))
        .args(["render", &reference, "--use-http", "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "opm render:\n{}", String::from_utf8_lossy(&out.stderr));
    let rendered: Vec<Value> =
        serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>().collect::<Result<_, _>>().unwrap();
    let [bundle] = &rendered[..] else { panic!("opm render gave {} documents", rendered.len()) };
    let csv_name = want["metadata"]["name"].as_str().unwrap();
    assert_eq!(bundle["schema"], json!("olm.bundle"), "{bundle:#}");
    assert_eq!(bundle["name"], json!(csv_name));
    assert_eq!(bundle["package"], json!(PACKAGE));
    assert_eq!(bundle["image"], json!(reference));
    let related: Vec<&str> =
        bundle["relatedImages"].as_array().into_iter().flatten().filter_map(|r| r["image"].as_str()).collect();
    assert!(related.contains(&operator_image.as_str()), "relatedImages {related:?}");
    let props = bundle["properties"].as_array().unwrap();
    let gvks: BTreeSet<(String, String, String)> = props
        .iter()
        .filter(|p| p["type"] == "olm.gvk")
        .map(|p| {
            let v = &p["value"];
            (
                v["group"].as_str().unwrap().into(),
                v["kind"].as_str().unwrap().into(),
                v["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want_gvks: BTreeSet<(String, String, String)> = documents(&read("crds/crds.yaml"))
        .iter()
        .flat_map(|c| {
            let (group, kind) = (c["spec"]["group"].as_str().unwrap(), c["spec"]["names"]["kind"].as_str().unwrap());
            let versions = c["spec"]["versions"].as_array().unwrap().clone();
            versions
                .into_iter()
                .map(move |v| (group.to_string(), kind.to_string(), v["name"].as_str().unwrap().to_string()))
        })
        .collect();
    assert_eq!(gvks, want_gvks);
    let package_prop = props.iter().find(|p| p["type"] == "olm.package").expect("olm.package property");
    assert_eq!(package_prop["value"], json!({"packageName": PACKAGE, "version": env!("CARGO_PKG_VERSION")}));

    // A file-based catalog: the package, its channel, the rendered bundle.
    let configs = tmp.path().join("catalog/configs");
    let dir = configs.join(PACKAGE);
    std::fs::create_dir_all(&dir).unwrap();
    let icon = &want["spec"]["icon"][0];
    let catalog = [
        json!({"schema": "olm.package", "name": PACKAGE, "defaultChannel": CHANNEL,
               "icon": {"base64data": icon["base64data"], "mediatype": icon["mediatype"]}}),
        json!({"schema": "olm.channel", "package": PACKAGE, "name": CHANNEL, "entries": [{"name": csv_name}]}),
        bundle.clone(),
    ];
    let text: String = catalog.iter().map(|d| serde_json::to_string_pretty(d).unwrap() + "\n").collect();
    std::fs::write(dir.join("catalog.json"), text).unwrap();
    let out = Command::new(support::require("opm")).arg("validate").arg(&configs).output().unwrap();
    assert!(out.status.success(), "opm validate:\n{}", String::from_utf8_lossy(&out.stderr));

    // opm serve, as a CatalogSource's pod runs it.
    let serve = ImageConfig {
        entrypoint: vec!["/bin/opm".into()],
        cmd: vec!["serve".into(), "/configs".into()],
        labels: Default::default(),
        platform: ("linux".into(), "amd64".into()),
        raw: Value::Null,
    };
    let server = OpmServer::start(&tmp.path().join("catalog"), &serve).unwrap();
    assert_eq!(server.packages(), [PACKAGE]);
    let package = server.package(PACKAGE);
    assert_eq!(package.default_channel, CHANNEL);
    assert_eq!(package.channels.into_iter().collect::<Vec<_>>(), [(CHANNEL.to_string(), csv_name.to_string())]);
    assert_eq!(server.bundles(), [(PACKAGE.to_string(), CHANNEL.to_string(), csv_name.to_string())]);
    let got = server
        .grpc("api.Registry/GetBundle", Some(&json!({"pkgName": PACKAGE, "channelName": CHANNEL, "csvName": csv_name})))
        .remove(0);
    assert_eq!(got["bundlePath"], json!(reference));
    let served_csv: Value = serde_json::from_str(got["csvJson"].as_str().expect("csvJson")).unwrap();
    assert_eq!(served_csv["spec"]["install"], want["spec"]["install"]);
    let objects = got["object"].as_array().expect("bundle objects");
    assert_eq!(objects.len(), 2 + documents(&read("crds/crds.yaml")).len(), "the CSV, each CRD and the Service");
    eprintln!("bundle {reference} ({csv_name}) rendered, validated and served by opm at {}", server.addr);
}
