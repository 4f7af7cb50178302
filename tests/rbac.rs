//! The operator's permissions are the rule list of `src/controller/rbac.rs`, exactly: the
//! files made from it (`config/rbac`, the chart's RBAC template) match it, and a real
//! apiserver, asked about every verb on every resource the rules name (and a few they do
//! not) in every namespace that matters, answers for what `config/rbac` installs, and for an
//! installation watching some namespaces, what the rules say: a missing or an extra
//! permission fails.

mod support;

use std::path::{Path, PathBuf};

use futures::StreamExt;
use imageset_operator::controller::rbac::{self, Install, RULES, Scope};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::cluster;
use support::operator::{OPERATOR_NS, OPERATOR_SA, apply_rbac, config_rbac, documents};

/// The installation `config/rbac` describes.
fn default_install() -> Install<'static> {
    Install { name: "imageset-operator", namespace: OPERATOR_NS, service_account: OPERATOR_SA, watch_namespaces: &[] }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Each file made from the rule list, with what it must hold.
fn generated() -> Vec<(PathBuf, String)> {
    let (roles, bindings) = rbac::manifests(&default_install());
    vec![
        (root().join("config/rbac/role.yaml"), roles),
        (root().join("config/rbac/role_binding.yaml"), bindings),
        (root().join("charts/imageset-operator/templates/rbac.yaml"), rbac::chart_template()),
    ]
}

/// The committed files match the rule list; `IMAGESET_REGENERATE=1` rewrites them first.
#[test]
fn config_rbac_and_the_chart_are_made_from_the_rule_list() {
    let regenerate = std::env::var_os("IMAGESET_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (path, want) in generated() {
        if regenerate {
            std::fs::write(&path, &want).unwrap();
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.strip_prefix(root()).unwrap().display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with src/controller/rbac.rs: {stale:?}; regenerate with:\n    {}",
        rbac::REGENERATE
    );
}

/// The chart has no role or binding for the operator but those of `templates/rbac.yaml`; its
/// values offer `watchNamespaces` (passed to the operator) and, by default, the Role of every
/// namespace produced objects go to.
#[test]
fn the_chart_grants_nothing_beside_the_rule_list() {
    let chart = root().join("charts/imageset-operator");
    for entry in std::fs::read_dir(chart.join("templates")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if name == "rbac.yaml" {
            continue;
        }
        for kind in ["Role", "RoleBinding", "ClusterRoleBinding"] {
            assert!(!text.contains(&format!("kind: {kind}\n")), "{name} holds a {kind}");
        }
        if text.contains("kind: ClusterRole\n") {
            // The people's roles, aggregated into admin, edit and view: never bound to the operator.
            assert_eq!(name, "user-roles.yaml");
            assert!(text.matches("rbac.authorization.k8s.io/aggregate-to-").count() >= 3, "{name}");
        }
    }
    let values: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    assert_eq!(values["watchNamespaces"], json!([]));
    assert_eq!(values["rbac"]["objectNamespaces"], json!(rbac::fixed_namespaces()));
    let deployment = std::fs::read_to_string(chart.join("templates/deployment.yaml")).unwrap();
    assert!(
        deployment.contains("- name: WATCH_NAMESPACES\n              value: {{ join \",\" . | quote }}"),
        "the chart does not pass watchNamespaces to the operator"
    );
}

/// Every (group, resource) the rules name, and some they must not grant.
fn resources() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = vec![
        ("", "pods"),
        ("", "events"),
        ("apps", "deployments"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("mirror.openshift.io", "imagesetconfigurations/finalizers"),
        ("config.openshift.io", "clusterversions"),
    ];
    for r in RULES {
        if !out.contains(&(r.group, r.resource)) {
            out.push((r.group, r.resource));
        }
    }
    out
}

const VERBS: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

/// Asks the apiserver, for every resource, verb, namespace and name that matters, whether the
/// installation's ServiceAccount may; returns each answer that differs from the rule list.
async fn disagreements(admin: &kube::Client, install: &Install<'_>, elsewhere: &[&str]) -> (usize, Vec<String>) {
    let mut namespaces: Vec<Option<String>> = vec![None, Some(install.namespace.to_string())];
    namespaces.extend(install.watch_namespaces.iter().cloned().map(Some));
    namespaces.extend(rbac::fixed_namespaces().into_iter().chain(elsewhere.iter().copied()).map(|n| Some(n.into())));
    let mut asks = Vec::new();
    for ns in &namespaces {
        for &(group, resource) in &resources() {
            for &verb in VERBS {
                for name in [None, Some(rbac::LEASE), Some("other")] {
                    asks.push((ns.clone(), group, resource, verb, name));
                }
            }
        }
    }
    let user = format!("system:serviceaccount:{}:{}", install.namespace, install.service_account);
    let groups = [
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{}", install.namespace),
        "system:authenticated".into(),
    ];
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    let n = asks.len();
    let wrong = futures::stream::iter(asks)
        .map(|(ns, group, resource, verb, name)| {
            let (api, user, groups) = (api.clone(), user.clone(), groups.clone());
            async move {
                let (res, sub) = resource.split_once('/').unwrap_or((resource, ""));
                let review: SubjectAccessReview = serde_json::from_value(json!({
                    "spec": {"user": user, "groups": groups, "resourceAttributes": {
                        "namespace": ns.clone().unwrap_or_default(), "verb": verb, "group": group,
                        "resource": res, "subresource": sub, "name": name.unwrap_or_default()}}
                }))
                .unwrap();
                let got = api.create(&PostParams::default(), &review).await.expect("SubjectAccessReview");
                let allowed = got.status.map(|s| s.allowed).unwrap_or(false);
                let want = rbac::allows(install, ns.as_deref(), group, resource, verb, name);
                (allowed != want).then(|| {
                    format!(
                        "{verb} {group}/{resource} name {name:?} in {}: apiserver {allowed}, rules {want}",
                        ns.as_deref().unwrap_or("the cluster")
                    )
                })
            }
        })
        .buffer_unordered(16)
        .filter_map(futures::future::ready)
        .collect::<Vec<_>>()
        .await;
    (n, wrong)
}

/// What `config/rbac` installs grants exactly the rules, over every namespace.
#[tokio::test]
async fn config_rbac_grants_exactly_the_rules() {
    let cp = cluster::shared();
    let admin = cp.client().await;
    apply_rbac(&admin, &config_rbac()).await;
    let (asked, wrong) = disagreements(&admin, &default_install(), &["team-a"]).await;
    assert!(asked > 1000, "{asked}");
    assert!(wrong.is_empty(), "{} of {asked} answers differ:\n{}", wrong.len(), wrong.join("\n"));
}

/// With watched namespaces the image-set rules hold in those namespaces only, and nothing
/// else changes.
#[tokio::test]
async fn watched_namespaces_grant_the_image_set_rules_there_only() {
    let cp = cluster::shared();
    let admin = cp.client().await;
    let watched = ["team-a".to_string(), "team-b".to_string()];
    let install =
        Install { name: "scoped", namespace: "scoped-operator", service_account: "scoped", watch_namespaces: &watched };
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": install.service_account, "namespace": install.namespace}});
    let (roles, bindings) = rbac::manifests(&install);
    let mut docs = vec![sa];
    docs.extend(documents(&roles));
    docs.extend(documents(&bindings));
    apply_rbac(&admin, &docs).await;
    let (asked, wrong) = disagreements(&admin, &install, &["team-c"]).await;
    assert!(asked > 1000, "{asked}");
    assert!(wrong.is_empty(), "{} of {asked} answers differ:\n{}", wrong.len(), wrong.join("\n"));
    // The rules themselves: what the image sets' namespaces get is a Role there, not a
    // ClusterRole.
    let cluster_role = roles.split("---\n").find(|d| d.contains("kind: ClusterRole\n")).unwrap();
    for r in RULES.iter().filter(|r| r.scope == Scope::Watched && r.resource == "secrets") {
        assert!(!cluster_role.contains(&format!("resources: [{:?}]", r.resource)), "{cluster_role}");
    }
}

/// The admission policy that refuses `minVersion > maxVersion` ships with both installs, as
/// `api::validate` builds it (drift fails and says how to regenerate).
#[test]
fn the_admission_policy_ships_as_built() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = imageset_operator::api::validate::admission_policy_yaml();
    let chart = format!(
        "{{{{- /* Generated from api::validate::admission_policy(); see {POLICY_REGENERATE}. */}}}}\n{{{{- if .Capabilities.APIVersions.Has \"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy\" }}}}\n{policy}{{{{- end }}}}\n"
    );
    let files = [
        (
            root.join("config/admission/policy.yaml"),
            format!("# Generated from api::validate::admission_policy(); see {POLICY_REGENERATE}.\n{policy}"),
        ),
        (root.join("charts/imageset-operator/templates/admission-policy.yaml"), chart),
    ];
    for (path, want) in files {
        if std::env::var_os("IMAGESET_REGENERATE").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(have, want, "{} is stale: {POLICY_REGENERATE}", path.display());
    }
}

const POLICY_REGENERATE: &str = "IMAGESET_REGENERATE=1 cargo test --test rbac the_admission_policy_ships_as_built";
