//! Admission and the CLI agree. Every configuration the CLI refuses (the shared table
//! `api::validate::cases`, oc-mirror's invalid combinations from the reference's section 1,
//! version ranges across semver precedence, regular expressions) and the near misses it
//! accepts go to a real kube-apiserver, with our CRDs and the admission policy of
//! `api::validate::admission_policy`, and to the CLI's loader, as an oc-mirror file and as a
//! custom resource. The test fails on any disagreement but the documented ones:
//! - an oc-mirror file with an invalid `additionalImages[].targetRepo` is accepted, the entry
//!   skipped with oc-mirror's warning (scripts rely on it); a custom resource with one is refused;
//! - a CatalogSource template is a ConfigMap key in the cluster (`configmap:<name>/<key>`) and a
//!   file path for the command line;
//! - blockedImages: admission reads them as oc-mirror does (Go's RE2), the operator compiles
//!   them with Rust's `regex`; the patterns on which the two dialects disagree are listed, and
//!   each must still disagree as listed;
//! - field names: the CLI matches them case-insensitively, like oc-mirror's Go decoder; the
//!   apiserver by exact name (strict field validation, kubectl's default, refuses the others).
//!
//! The archive fields of an image set (`spec.destination`, `spec.from`: no `..`, no absolute
//! path, archives imported into a registry) are refused by the apiserver and the controller
//! alike, naming the field (`api::validate::cases::archive_cases`).
//!
//! And the valid side: every oc-mirror configuration in the shared data that the CLI accepts
//! is admitted, and every one it refuses is refused.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use imageset_operator::api::load::{self, LoadError};
use imageset_operator::api::validate::{self, cases};
use imageset_operator::api::{ImageSetConfiguration, to_yaml_lines};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::cluster;

const NS: &str = "parity";
const DESTINATION: &str = "docker://mirror.example.com:5000/ocp";
/// Requests in flight against the apiserver.
const PARALLEL: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ImageSet,
    Delete,
}

impl Kind {
    /// The kind, its block and its resource.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::ImageSet => ("ImageSetConfiguration", "mirror", "imagesetconfigurations"),
            Kind::Delete => ("DeleteImageSetConfiguration", "delete", "deleteimagesetconfigurations"),
        }
    }

    fn name(self) -> &'static str {
        self.names().0
    }

    fn block(self) -> &'static str {
        self.names().1
    }

    fn plural(self) -> &'static str {
        self.names().2
    }
}

/// One configuration in both forms.
#[derive(Clone, Debug)]
struct Doc {
    kind: Kind,
    /// What it is, for failures.
    label: String,
    /// oc-mirror's file.
    file: String,
    /// The custom resource (YAML).
    cr: String,
}

impl Doc {
    /// A `mirror:` or `delete:` block (YAML) in both forms.
    fn block(kind: Kind, label: &str, block: &str) -> Doc {
        let b = kind.block();
        Doc {
            kind,
            label: label.to_string(),
            file: format!("apiVersion: mirror.openshift.io/v2alpha1\nkind: {}\n{b}: {block}\n", kind.name()),
            cr: format!(
                "apiVersion: mirror.openshift.io/v2alpha1\nkind: {}\nmetadata:\n  name: parity\nspec:\n  destination: {DESTINATION}\n  {b}: {block}\n",
                kind.name()
            ),
        }
    }

    /// An oc-mirror file as its custom resource: its top-level fields (but kind, apiVersion and
    /// metadata) go under `spec`, as they are written, beside a destination.
    fn from_file(label: &str, file: &str) -> Doc {
        let kind = match load::kind_of(file).unwrap_or_else(|e| panic!("{label}: {e}")) {
            load::Kind::ImageSet => Kind::ImageSet,
            load::Kind::Delete => Kind::Delete,
        };
        let doc: Value = serde_saphyr::from_str(file).unwrap_or_else(|e| panic!("{label}: {e}"));
        let mut spec = serde_json::Map::new();
        spec.insert("destination".into(), json!(DESTINATION));
        for (k, v) in doc.as_object().unwrap() {
            if !["kind", "apiVersion", "metadata"].contains(&k.as_str()) {
                spec.insert(k.clone(), v.clone());
            }
        }
        let cr = json!({
            "apiVersion": "mirror.openshift.io/v2alpha1", "kind": kind.name(),
            "metadata": {"name": "parity"}, "spec": spec,
        });
        Doc { kind, label: label.into(), file: file.into(), cr: to_yaml_lines(&cr).unwrap() }
    }
}

/// What each side says about a [`Doc`].
#[derive(Debug)]
struct Verdicts {
    /// The CLI on the oc-mirror file; `Ok` carries the entries it skipped.
    file: Result<Vec<String>, String>,
    /// The CLI on the custom resource.
    cr: Result<(), String>,
    /// The controller on the custom resource (`check_spec` after loading; image sets only).
    cluster: Result<(), String>,
    /// The apiserver (strict field validation, dry run).
    api: Result<(), String>,
}

/// The CLI's and the controller's verdicts; the apiserver's is asked separately.
fn cli(doc: &Doc) -> Verdicts {
    let msg = |e: LoadError| e.to_string();
    let not_asked = Err("not asked yet".to_string());
    match doc.kind {
        Kind::ImageSet => {
            // Entries the file loader leaves out (its deprecation warnings are no verdict).
            let skipped =
                |f: load::ImageSetFile| f.warnings.into_iter().filter(|w| w.ends_with(": SKIPPING")).collect();
            let file = load::image_set(&doc.file).map(skipped).map_err(msg);
            let cr = load::image_set(&doc.cr).map(|_| ()).map_err(msg);
            let cluster = cr.clone().and_then(|()| {
                let isc: ImageSetConfiguration = serde_saphyr::from_str(&doc.cr).map_err(|e| e.to_string())?;
                imageset_operator::controller::check_spec(&isc)
            });
            Verdicts { file, cr, cluster, api: not_asked }
        }
        Kind::Delete => {
            let file = load::delete_set(&doc.file).map(|_| Vec::new()).map_err(msg);
            let cr = load::delete_set(&doc.cr).map(|_| ()).map_err(msg);
            Verdicts { file, cluster: cr.clone(), cr, api: not_asked }
        }
    }
}

/// A dry-run create with strict field validation, as `kubectl apply` sends it.
async fn admit(client: &kube::Client, kind: Kind, object: &Value) -> Result<(), String> {
    let url = format!(
        "/apis/mirror.openshift.io/v2alpha1/namespaces/{NS}/{}?dryRun=All&fieldValidation=Strict",
        kind.plural()
    );
    let req = http::Request::post(url)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(object).unwrap())
        .unwrap();
    match client.request::<Value>(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Err(s.message.clone()),
        Err(e) => panic!("apiserver: {e}"),
    }
}

/// Every document through every side.
async fn judge(client: &kube::Client, docs: Vec<Doc>) -> Vec<(Doc, Verdicts)> {
    futures::stream::iter(docs)
        .map(|doc| async move {
            let mut verdicts = cli(&doc);
            let object: Value = serde_saphyr::from_str(&doc.cr).unwrap_or_else(|e| panic!("{}: {e}", doc.label));
            verdicts.api = admit(client, doc.kind, &object).await;
            (doc, verdicts)
        })
        .buffered(PARALLEL)
        .collect()
        .await
}

/// The field a CLI refusal names: the first `spec....` path of its message.
fn cli_field(msg: &str) -> Option<&str> {
    let start = msg.find("spec.")?;
    let rest = &msg[start..];
    Some(&rest[..rest.find(':').unwrap_or(rest.len())])
}

/// Whether the apiserver's refusal names the field the CLI named: the apiserver reports a rule
/// at the object or list that holds the field, so a prefix of the CLI's path of at least three
/// components (`spec.mirror.operators`) counts, and a rule on the whole block counts if its
/// message names the field.
fn names_field(api: &str, cli_path: &str) -> bool {
    let mut p = cli_path;
    loop {
        if p.matches(['.', '[']).count() >= 2 && api.contains(p) {
            return true;
        }
        match p.rfind(['.', '[']) {
            Some(i) => p = &p[..i],
            None => break,
        }
    }
    let last = cli_path.rsplit(['.', ']']).find(|s| !s.is_empty()).unwrap_or(cli_path);
    api.contains(last)
}

/// The documented disagreements; `None` when a document must get one verdict everywhere.
fn exception(doc: &Doc, v: &Verdicts) -> Option<&'static str> {
    if let Ok(skipped) = &v.file
        && !skipped.is_empty()
        && v.cr.as_ref().is_err_and(|e| e.contains(".targetRepo"))
    {
        return Some("an invalid targetRepo: skipped in an oc-mirror file, refused in a custom resource");
    }
    if v.cr.is_ok() && v.cluster.as_ref().is_err_and(|e| e.contains("targetCatalogSourceTemplate")) {
        return Some("a CatalogSource template: a file for the command line, a ConfigMap key in the cluster");
    }
    let lower_keys = ["additionalimages:", "blockedimages:", "targetcatalog:", "minversion:", "maxversion:"];
    if v.file.is_ok() && lower_keys.iter().any(|k| doc.file.contains(k)) && v.api.is_err() {
        return Some("field names in another case: the CLI reads them as Go does, the apiserver by exact name");
    }
    None
}

/// The documented disagreements met, for the summary.
static EXCEPTIONS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Checks one document; `Err` says what disagrees.
fn agree(doc: &Doc, v: &Verdicts) -> Result<(), String> {
    let exception = exception(doc, v);
    if let Some(e) = exception {
        EXCEPTIONS.lock().unwrap().push(format!("{}: {e}", doc.label));
    }
    let refused_by_file = v.file.is_err();
    if exception.is_none() && refused_by_file != v.cr.is_err() {
        return Err("the CLI gives an oc-mirror file and its custom resource different verdicts".into());
    }
    if v.cluster.is_err() != v.api.is_err() {
        if exception.is_some_and(|e| e.starts_with("field names")) {
            return Ok(());
        }
        return Err(format!(
            "the apiserver {} what the CLI {}",
            if v.api.is_ok() { "admits" } else { "refuses" },
            if v.cluster.is_ok() { "accepts" } else { "refuses" }
        ));
    }
    if let (Err(cli), Err(api)) = (&v.cluster, &v.api)
        && let Some(field) = cli_field(cli)
        && !names_field(api, field)
    {
        return Err(format!("the apiserver's refusal does not name {field}"));
    }
    Ok(())
}

fn show(doc: &Doc, v: &Verdicts, why: &str) -> String {
    format!(
        "{}: {why}\n  file: {:?}\n  custom resource: {:?}\n  controller: {:?}\n  apiserver: {:?}\n---\n{}",
        doc.label, v.file, v.cr, v.cluster, v.api, doc.cr
    )
}

/// Installs the admission policy and waits until the apiserver enforces it.
async fn install_policy(client: &kube::Client) {
    use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
    let [policy, binding] = validate::admission_policy();
    let pp = PatchParams::apply("admission-parity").force();
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    policies.patch(validate::POLICY_NAME, &pp, &Patch::Apply(&policy)).await.expect("policy applied");
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    bindings.patch(validate::POLICY_NAME, &pp, &Patch::Apply(&binding)).await.expect("binding applied");
    let probe =
        Doc::block(Kind::ImageSet, "probe", "{platform: {channels: [{name: a, minVersion: '2', maxVersion: '1'}]}}");
    let object: Value = serde_saphyr::from_str(&probe.cr).unwrap();
    let start = Instant::now();
    loop {
        if admit(client, Kind::ImageSet, &object).await.is_err_and(|e| e.contains(validate::POLICY_NAME)) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the admission policy is not enforced after 60s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The table's blocks as image sets, and those a delete can hold as deletes.
fn table_docs() -> Vec<(Doc, Option<&'static str>)> {
    let mut out = Vec::new();
    for (i, case) in cases::rejections().into_iter().chain(cases::acceptances()).enumerate() {
        out.push((Doc::block(Kind::ImageSet, &format!("case {i} {}", case.block), &case.block), case.path));
        if !case.block.contains("blockedImages") {
            out.push((
                Doc::block(Kind::Delete, &format!("case {i} as a delete {}", case.block), &case.block),
                case.path,
            ));
        }
    }
    out
}

/// oc-mirror's invalid combinations from the reference (section 1) that the table's blocks do
/// not hold: v1 fields, blocks in the wrong kind, missing blocks, wrong types and values.
fn structural_docs() -> Vec<Doc> {
    let isc = |label: &str, top: &str| {
        Doc::from_file(label, &format!("apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\n{top}"))
    };
    let disc = |label: &str, top: &str| {
        Doc::from_file(
            label,
            &format!("apiVersion: mirror.openshift.io/v2alpha1\nkind: DeleteImageSetConfiguration\n{top}"),
        )
    };
    vec![
        isc("v1 storageConfig", "storageConfig: {local: {path: /tmp/x}}\nmirror: {}\n"),
        isc("v1 headsOnly", "mirror: {operators: [{catalog: 'q.io/a/b:1', headsOnly: true}]}\n"),
        isc("v1 targetName", "mirror: {operators: [{catalog: 'q.io/a/b:1', targetName: x}]}\n"),
        isc("v1 platform.channels[].name typo", "mirror: {platform: {channel: [{name: a}]}}\n"),
        isc("delete: in an image set", "mirror: {}\ndelete: {}\n"),
        isc("no mirror:", "archiveSize: 4\n"),
        isc("a string for a boolean", "mirror: {operators: [{catalog: 'q.io/a/b:1', full: 'yes'}]}\n"),
        isc("a mapping for a list", "mirror: {additionalImages: {name: 'q.io/a/b:1'}}\n"),
        isc("an unknown architecture", "mirror: {platform: {architectures: [x86_64]}}\n"),
        isc("an unknown channel type", "mirror: {platform: {channels: [{name: a, type: rhel}]}}\n"),
        isc("a number for a version", "mirror: {platform: {channels: [{name: a, minVersion: 4.18}]}}\n"),
        disc("mirror: in a delete", "delete: {}\nmirror: {}\n"),
        disc("no delete:", "archiveSize: 4\n"),
        disc(
            "blockedImages in a delete",
            "delete: {blockedImages: [{name: x}], additionalImages: [{name: 'q.io/a/b:1'}]}\n",
        ),
        disc("archiveSize in a delete", "archiveSize: 4\ndelete: {additionalImages: [{name: 'q.io/a/b:1'}]}\n"),
    ]
}

/// The documented disagreements, shown: each document and the exception it must meet (`None`:
/// none, one verdict everywhere).
fn difference_docs() -> Vec<(Doc, Option<&'static str>)> {
    let isc = |label: &str, block: &str| Doc::block(Kind::ImageSet, label, block);
    vec![
        (
            isc(
                "a file path template",
                "{operators: [{catalog: 'q.io/a/b:1', targetCatalogSourceTemplate: /home/me/cs.yaml}]}",
            ),
            Some("a CatalogSource template"),
        ),
        (
            isc(
                "a template key with a slash",
                "{operators: [{catalog: 'q.io/a/b:1', targetCatalogSourceTemplate: 'configmap:cm/a/b'}]}",
            ),
            Some("a CatalogSource template"),
        ),
        (
            isc(
                "a template without a key",
                "{operators: [{catalog: 'q.io/a/b:1', targetCatalogSourceTemplate: 'configmap:cm'}]}",
            ),
            Some("a CatalogSource template"),
        ),
        (
            isc(
                "a ConfigMap template",
                "{operators: [{catalog: 'q.io/a/b:1', targetCatalogSourceTemplate: 'configmap:cs/template.yaml'}]}",
            ),
            None,
        ),
        (
            Doc::block(
                Kind::Delete,
                "a file path template in a delete",
                "{operators: [{catalog: 'q.io/a/b:1', targetCatalogSourceTemplate: /home/me/cs.yaml}]}",
            ),
            None,
        ),
        (
            isc(
                "an invalid targetRepo",
                "{additionalImages: [{name: 'q.io/a/b:1', targetRepo: 'UPPER/case'}, {name: 'q.io/a/c:1'}]}",
            ),
            Some("an invalid targetRepo"),
        ),
        (isc("a field name in lowercase", "{additionalimages: [{name: 'q.io/a/b:1'}]}"), Some("field names")),
    ]
}

/// minVersion/maxVersion pairs across semver precedence, each in one of the three places.
fn range_docs() -> Vec<Doc> {
    let versions = [
        "0.0.0",
        "0.0.0-0",
        "0.0.0-a",
        "1",
        "1.0",
        "v1.0.0",
        "1.0.0-rc.1",
        "1.0.0-rc.2",
        "1.0.0-rc.10",
        "1.0.0-rc.1.1",
        "1.0.0-RC.1",
        "1.0.0-rc-1",
        "1.0.0+build.5",
        "1.0.1",
        "1.9.0",
        "1.10.0",
        "v1.9.0-alpha",
        "2.0.0-0.1",
        "4.18.5",
        "9999999999999999999.0.0",
    ];
    let cat = "registry.redhat.io/redhat/redhat-operator-index:v4.18";
    let mut out = Vec::new();
    for (i, min) in versions.iter().enumerate() {
        for (j, max) in versions.iter().enumerate() {
            let block = match (i + j) % 3 {
                0 => format!("{{platform: {{channels: [{{name: c, minVersion: '{min}', maxVersion: '{max}'}}]}}}}"),
                1 => format!(
                    "{{operators: [{{catalog: {cat}, packages: [{{name: p, minVersion: '{min}', maxVersion: '{max}'}}]}}]}}"
                ),
                _ => format!(
                    "{{operators: [{{catalog: {cat}, packages: [{{name: p, channels: [{{name: c, minVersion: '{min}', maxVersion: '{max}'}}]}}]}}]}}"
                ),
            };
            out.push(Doc::block(Kind::ImageSet, &format!("range {min} .. {max}"), &block));
        }
    }
    out
}

/// Regular expressions on which Go's RE2 (admission, oc-mirror) and Rust's `regex` (the
/// operator) disagree, and which accepts them. Each must still disagree so.
const REGEX_DIALECT: [(&str, &str); 16] = [
    ("x{1001}", "Rust"),
    ("a**", "Rust"),
    ("a+*", "Rust"),
    ("a{2}{3}", "Rust"),
    ("(?x) a", "Rust"),
    ("(?R)a", "Rust"),
    ("[a--b]", "Rust"),
    ("[[:foo:]]", "Rust"),
    ("\\Q.\\E", "Go"),
    ("a{,5}", "Go"),
    ("a{", "Go"),
    ("{", "Go"),
    ("a{1", "Go"),
    ("\\0", "Go"),
    ("\\01", "Go"),
    ("(?P<n>a)(?P<n>b)", "Go"),
];

fn regex_docs() -> Vec<Doc> {
    let agreeing = [
        "",
        "\\",
        "a(b",
        "[",
        "]",
        "*",
        "+a",
        "?",
        "a|",
        "|",
        "()",
        "(?:)",
        "^*",
        "$*",
        "\\b*",
        "(?i)*",
        "\\d{2,1}",
        "x{1000}",
        "x{1000}{1000}",
        "(x{1000}){1000}",
        "\\8",
        "\\y",
        "\\cA",
        "\\N",
        "\\K",
        "\\h",
        "\\R",
        "\\X",
        "\\H",
        "\\Z",
        "\\z",
        "\\A",
        "\\e",
        "\\1",
        "\\pN",
        "\\PN",
        "\\p{Greek}",
        "\\p{Letter}",
        "\\x{10FFFF}",
        "\\x{110000}",
        "[[:word:]]",
        "[]a]",
        "[^]a]",
        "[a&&b]",
        "\\b{start}",
        "\\<",
        "(?U)a*",
        "(?s:.)",
        "(?i)a",
        "(?<n>a)",
        "(?P<n>a)",
        "(?P<n",
        "(a){0}",
        "((((((((((a))))))))))",
        "\\_",
        "\\-",
        "\\/",
        "\\@",
    ];
    agreeing
        .iter()
        .copied()
        .chain(REGEX_DIALECT.iter().map(|(p, _)| *p))
        .filter(|p| !p.is_empty())
        .map(|p| {
            let quoted = serde_json::to_string(p).unwrap();
            Doc::block(
                Kind::ImageSet,
                &format!("blockedImages {p:?}"),
                &format!("{{blockedImages: [{{name: {quoted}}}]}}"),
            )
        })
        .collect()
}

/// The archive fields of an image set (`spec.destination`, `spec.from`) as the shared table
/// gives them, each with the field its refusal names; no oc-mirror file holds them.
fn archive_docs() -> Vec<(Doc, Option<&'static str>)> {
    cases::archive_cases()
        .into_iter()
        .map(|c| {
            let mut spec =
                json!({"destination": c.destination, "mirror": {"additionalImages": [{"name": "quay.io/a/b:1"}]}});
            if let Some(from) = c.from {
                spec["from"] = json!(from);
            }
            let cr = json!({
                "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
                "metadata": {"name": "parity"}, "spec": spec,
            });
            let label = format!("archive paths: destination {} from {:?}", c.destination, c.from);
            (Doc { kind: Kind::ImageSet, label, file: String::new(), cr: to_yaml_lines(&cr).unwrap() }, c.path)
        })
        .collect()
}

/// Every oc-mirror configuration (v2 and v1alpha2) in the shared data.
fn config_docs() -> Vec<Doc> {
    let root = support::shared_data().join("oc-mirror-configs");
    let mut out = Vec::new();
    for file in walk(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        if load::kind_of(&text).is_err() {
            continue;
        }
        let label = file.strip_prefix(&root).unwrap().display().to_string();
        out.push(Doc::from_file(&label, &text));
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The CLI's loaded form of an accepted oc-mirror file, as a custom resource (what a user gets
/// by pasting the block with its field names as the schema spells them).
fn normalized(doc: &Doc) -> Value {
    let (block, value) = match doc.kind {
        Kind::ImageSet => {
            let f = load::image_set(&doc.file).unwrap();
            ("mirror", json!({"mirror": f.mirror, "archiveSize": f.archive_size}))
        }
        Kind::Delete => ("delete", json!({"delete": load::delete_set(&doc.file).unwrap().delete})),
    };
    let mut spec = value.as_object().unwrap().clone();
    spec.retain(|_, v| !v.is_null());
    spec.insert("destination".into(), json!(DESTINATION));
    assert!(spec.contains_key(block));
    json!({"apiVersion": "mirror.openshift.io/v2alpha1", "kind": doc.kind.name(), "metadata": {"name": "parity"}, "spec": spec})
}

#[tokio::test]
async fn admission_refuses_what_the_cli_refuses_and_admits_what_it_accepts() {
    let start = Instant::now();
    let client = cluster::shared().client().await;
    cluster::ensure_namespace(&client, NS).await;
    install_policy(&client).await;

    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();

    // 1. The shared table: each rejection refused everywhere, naming its field; each near
    //    miss accepted everywhere.
    let table = table_docs();
    let expected: Vec<Option<&str>> = table.iter().map(|(_, p)| *p).collect();
    let judged = judge(&client, table.into_iter().map(|(d, _)| d).collect()).await;
    for ((doc, v), path) in judged.iter().zip(expected) {
        let block = doc.kind.block();
        let verdict = match path {
            Some(p) if v.cr.is_ok() => Err(format!("the CLI accepts it; the table says it refuses {p}")),
            Some(p) if !v.cr.as_ref().unwrap_err().contains(&format!("spec.{block}.{p}")) => {
                Err(format!("the CLI does not name spec.{block}.{p}"))
            }
            None if v.cr.is_err() => Err("the CLI refuses a near miss of the table".to_string()),
            _ => agree(doc, v),
        };
        *counts.entry(if path.is_some() { "table rejections" } else { "table near misses" }).or_default() += 1;
        if let Err(why) = verdict {
            failures.push(show(doc, v, &why));
        }
    }

    // 2. oc-mirror's structural refusals: refused by the CLI in both forms and by the
    //    apiserver (strict field validation).
    for (doc, v) in judge(&client, structural_docs()).await {
        *counts.entry("structural").or_default() += 1;
        let verdict = if v.file.is_ok() || v.cr.is_ok() {
            Err("the CLI accepts an invalid combination from the reference".to_string())
        } else if v.api.is_ok() {
            Err("the apiserver admits an invalid combination from the reference".to_string())
        } else {
            Ok(())
        };
        if let Err(why) = verdict {
            failures.push(show(&doc, &v, &why));
        }
    }

    // 2b. The documented disagreements, each as documented.
    let differences = difference_docs();
    let wanted: Vec<Option<&str>> = differences.iter().map(|(_, e)| *e).collect();
    for ((doc, v), want) in judge(&client, differences.into_iter().map(|(d, _)| d).collect()).await.iter().zip(wanted) {
        *counts.entry("documented differences").or_default() += 1;
        let got = exception(doc, v);
        if let Some(g) = got {
            EXCEPTIONS.lock().unwrap().push(format!("{}: {g}", doc.label));
        }
        let verdict = match want {
            None => agree(doc, v),
            Some(w) if got.is_some_and(|g| g.starts_with(w)) && v.file.is_ok() && v.api.is_err() => Ok(()),
            Some(w) => Err(format!("expected the documented difference {w:?}, got {got:?}")),
        };
        if let Err(why) = verdict {
            failures.push(show(doc, v, &why));
        }
    }

    // 3. Version ranges: the admission policy orders versions as the CLI does.
    let mut refused_ranges = 0;
    for (doc, v) in judge(&client, range_docs()).await {
        *counts.entry("version ranges").or_default() += 1;
        refused_ranges += usize::from(v.api.is_err());
        if let Err(why) = agree(&doc, &v) {
            failures.push(show(&doc, &v, &why));
        }
    }
    if !(100..300).contains(&refused_ranges) {
        failures.push(format!("{refused_ranges} of 400 version ranges refused: the policy is not at work"));
    }

    // 4. Regular expressions: one verdict, but for the listed dialect differences, which must
    //    still differ as listed.
    for (doc, v) in judge(&client, regex_docs()).await {
        *counts.entry("regular expressions").or_default() += 1;
        let pattern: String =
            serde_saphyr::from_str::<Value>(&doc.cr).unwrap()["spec"]["mirror"]["blockedImages"][0]["name"]
                .as_str()
                .unwrap()
                .to_string();
        let verdict = match REGEX_DIALECT.iter().find(|(p, _)| *p == pattern) {
            Some((_, accepts)) => {
                let got = match (v.api.is_ok(), v.cluster.is_ok()) {
                    (true, false) => "Go",
                    (false, true) => "Rust",
                    _ => "both or neither",
                };
                if got == *accepts { Ok(()) } else { Err(format!("listed as accepted by {accepts} only, got {got}")) }
            }
            None => agree(&doc, &v),
        };
        if let Err(why) = verdict {
            failures.push(show(&doc, &v, &why));
        }
    }

    // 5a. Archive paths: refused by the controller and the apiserver alike, naming the field
    //     (CEL rules); the near misses admitted everywhere.
    let archive = archive_docs();
    let wanted: Vec<Option<&str>> = archive.iter().map(|(_, p)| *p).collect();
    for ((doc, v), path) in judge(&client, archive.into_iter().map(|(d, _)| d).collect()).await.iter().zip(wanted) {
        *counts.entry("archive paths").or_default() += 1;
        let verdict = match path {
            Some(p) if !v.cluster.as_ref().is_err_and(|e| e.contains(&format!("{p}: "))) => {
                Err(format!("the controller does not refuse naming {p}"))
            }
            Some(p) if !v.api.as_ref().is_err_and(|e| names_field(e, p) && e.contains(p)) => {
                Err(format!("the apiserver does not refuse naming {p}"))
            }
            None if v.cluster.is_err() || v.api.is_err() => Err("a near miss is refused".to_string()),
            _ => Ok(()),
        };
        if let Err(why) = verdict {
            failures.push(show(doc, v, &why));
        }
    }

    // 5. The shared data: what the CLI accepts is admitted (as written, or with the field
    //    names as the schema spells them); what it refuses is refused.
    let configs = config_docs();
    let mut accepted_configs = Vec::new();
    for (doc, v) in judge(&client, configs).await {
        *counts.entry("oc-mirror configurations").or_default() += 1;
        if v.file.is_ok() {
            accepted_configs.push(doc.clone());
        }
        if v.file.is_err() && v.api.is_ok() {
            failures.push(show(&doc, &v, "the apiserver admits an oc-mirror configuration the CLI refuses"));
        }
        if v.file.is_ok() && v.api.is_err() {
            match exception(&doc, &v) {
                Some(e) => EXCEPTIONS.lock().unwrap().push(format!("{}: {e}", doc.label)),
                None => {
                    failures.push(show(&doc, &v, "the apiserver refuses an oc-mirror configuration the CLI accepts"))
                }
            }
        }
    }
    let normalized_docs: Vec<(Doc, Value)> = accepted_configs.iter().map(|d| (d.clone(), normalized(d))).collect();
    let admitted: Vec<(String, Result<(), String>)> = futures::stream::iter(normalized_docs)
        .map(|(doc, object)| {
            let client = client.clone();
            async move { (doc.label.clone(), admit(&client, doc.kind, &object).await) }
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    for (label, verdict) in &admitted {
        if let Err(e) = verdict {
            failures.push(format!("{label}: the CLI accepts it, the apiserver refuses its loaded form: {e}"));
        }
    }
    assert!(accepted_configs.len() >= 40, "only {} accepted oc-mirror configurations", accepted_configs.len());

    let exceptions = EXCEPTIONS.lock().unwrap().clone();
    eprintln!("{counts:?} in {:?}; documented disagreements:\n  {}", start.elapsed(), exceptions.join("\n  "));
    assert!(failures.is_empty(), "{} disagreements:\n\n{}", failures.len(), failures.join("\n\n"));
}
