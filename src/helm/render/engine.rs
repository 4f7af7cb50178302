//! Helm's `engine.Render`: every template of the chart and its subcharts parsed into one set
//! (deepest paths first, so a parent's `define` wins), each non-partial executed with its
//! chart's scoped values, `<no value>` removed, and Go's errors rewritten as Helm rewrites them.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::OnceLock;

use regex::Regex;

use super::chart::Metadata;
use super::template::{Exec, Set, parse};
use super::value::{Key, Obj, Struct, Value, map_of};
use super::values::{Work, coalesce_values};

/// The release and cluster a render pretends to target.
#[derive(Debug, Clone)]
pub struct Options {
    pub release_name: String,
    pub namespace: String,
    pub is_install: bool,
    pub kube_version: String,
    pub api_versions: Vec<String>,
}

/// Group/versions of Helm v3.21's `DefaultVersionSet`: client-go v0.36's scheme plus
/// apiextensions v1 and v1beta1.
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha2",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];

impl Default for Options {
    /// What oc-mirror uses: empty `ReleaseOptions` and `chartutil.DefaultCapabilities`.
    fn default() -> Self {
        Options {
            release_name: String::new(),
            namespace: String::new(),
            is_install: false,
            kube_version: "v1.20.0".into(),
            api_versions: DEFAULT_API_VERSIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

fn strs(v: &[String]) -> Value {
    Value::Strings(Rc::new(v.iter().map(|s| Value::str(s)).collect()))
}

fn pointer(ty: &'static str, fields: Vec<(&'static str, Value)>) -> Value {
    Value::Obj(Rc::new(Obj::Struct(Struct { ty, fields, stringer: None, pointer: true })))
}

fn metadata_fields(m: &Metadata) -> Vec<(&'static str, Value)> {
    let maintainers = m
        .maintainers
        .iter()
        .map(|x| {
            pointer(
                "chart.Maintainer",
                vec![("Name", Value::str(&x.name)), ("Email", Value::str(&x.email)), ("URL", Value::str(&x.url))],
            )
        })
        .collect();
    let deps = m
        .dependencies
        .iter()
        .flatten()
        .map(|d| {
            let ivs = d.import_values.iter().map(|n| super::yaml_in::to_value(n).unwrap_or(Value::Nil)).collect();
            pointer(
                "chart.Dependency",
                vec![
                    ("Name", Value::str(&d.name)),
                    ("Version", Value::str(&d.version)),
                    ("Repository", Value::str(&d.repository)),
                    ("Condition", Value::str(&d.condition)),
                    ("Tags", strs(&d.tags)),
                    ("Enabled", Value::Bool(d.enabled)),
                    ("ImportValues", Value::list(ivs)),
                    ("Alias", Value::str(&d.alias)),
                ],
            )
        })
        .collect();
    let annotations: BTreeMap<Key, Rc<str>> =
        m.annotations.iter().map(|(k, v)| (Key::from(k.as_str()), Rc::from(v.as_str()))).collect();
    vec![
        ("Name", Value::str(&m.name)),
        ("Home", Value::str(&m.home)),
        ("Sources", strs(&m.sources)),
        ("Version", Value::str(&m.version)),
        ("Description", Value::str(&m.description)),
        ("Keywords", strs(&m.keywords)),
        ("Maintainers", Value::list(maintainers)),
        ("Icon", Value::str(&m.icon)),
        ("APIVersion", Value::str(&m.api_version)),
        ("Condition", Value::str(&m.condition)),
        ("Tags", Value::str(&m.tags)),
        ("AppVersion", Value::str(&m.app_version)),
        ("Deprecated", Value::Bool(m.deprecated)),
        ("Annotations", Value::Obj(Rc::new(Obj::StrMap(annotations)))),
        ("KubeVersion", Value::str(&m.kube_version)),
        ("Dependencies", Value::list(deps)),
        ("Type", Value::str(&m.chart_type)),
    ]
}

fn chart_value(m: &Metadata, is_root: bool) -> Value {
    let mut fields = metadata_fields(m);
    fields.push(("Metadata", Value::structure("chart.Metadata", metadata_fields(m))));
    fields.push(("IsRoot", Value::Bool(is_root)));
    Value::structure("struct { chart.Metadata; IsRoot bool }", fields)
}

fn capabilities(o: &Options) -> Value {
    let v = o.kube_version.trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("1").to_string();
    let minor = parts.next().unwrap_or("0").to_string();
    let kube = Value::Obj(Rc::new(Obj::Struct(Struct {
        ty: "chartutil.KubeVersion",
        fields: vec![
            ("Version", Value::str(&o.kube_version)),
            ("Major", Value::string(major)),
            ("Minor", Value::string(minor)),
        ],
        stringer: Some(Rc::from(o.kube_version.as_str())),
        pointer: false,
    })));
    let apis =
        Value::Obj(Rc::new(Obj::VersionSet(Rc::new(o.api_versions.iter().map(|s| Rc::from(s.as_str())).collect()))));
    let helm = Value::structure(
        "version.BuildInfo",
        vec![
            ("Version", Value::str("v3.21")),
            ("GitCommit", Value::str("")),
            ("GitTreeState", Value::str("")),
            ("GoVersion", Value::str("go1.25")),
        ],
    );
    pointer("chartutil.Capabilities", vec![("KubeVersion", kube), ("APIVersions", apis), ("HelmVersion", helm)])
}

struct Tpl {
    key: String,
    text: Rc<str>,
    next: Value,
    base: String,
}

/// `recAllTpls`: the per-chart template data and every template with its scope.
fn all_templates(c: &Work, parent: Option<&Value>, full: &str, top: &Value, out: &mut Vec<Tpl>) -> Value {
    let values = match parent {
        None => top.get("Values").unwrap_or_else(Value::new_map),
        Some(p) => match p.get("Values").and_then(|v| v.get(&c.meta.name)) {
            Some(Value::Map(m)) => Value::Map(m),
            _ => Value::new_map(),
        },
    };
    let files: BTreeMap<Key, Arc<[u8]>> =
        c.files.iter().map(|f| (Key::from(f.name.as_str()), f.data.clone())).collect();
    let subcharts = Value::new_map();
    let next = map_of(vec![
        ("Chart", chart_value(&c.meta, parent.is_none())),
        ("Files", Value::Obj(Rc::new(Obj::Files(Rc::new(files))))),
        ("Release", top.get("Release").unwrap_or(Value::Nil)),
        ("Capabilities", top.get("Capabilities").unwrap_or(Value::Nil)),
        ("Values", values),
        ("Subcharts", subcharts.clone()),
    ]);
    for d in &c.deps {
        let sub_full = format!("{full}/charts/{}", d.meta.name);
        let sub = all_templates(d, Some(&next), &sub_full, top, out);
        if let Value::Map(m) = &subcharts {
            m.borrow_mut().insert(Key::from(d.meta.name.as_str()), sub);
        }
    }
    let library = c.meta.chart_type.eq_ignore_ascii_case("library");
    for t in c.templates {
        let base = t.name.rsplit('/').next().unwrap_or(&t.name);
        if library && !base.starts_with('_') {
            continue;
        }
        out.push(Tpl {
            key: super::funcs::path_clean(&format!("{full}/{}", t.name)),
            text: Rc::from(String::from_utf8_lossy(&t.data).as_ref()),
            next: next.clone(),
            base: format!("{full}/templates"),
        });
    }
    next
}

fn warn_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"HELM_ERR_START((?s).*)HELM_ERR_END").expect("valid regex"))
}

/// Helm's `cleanupExecError`.
fn cleanup_exec_error(file: &str, err: &str) -> String {
    if !err.starts_with("template: ") {
        return err.to_string();
    }
    let tokens: Vec<&str> = err.splitn(3, ": ").collect();
    if tokens.len() != 3 {
        return format!("execution error in ({file}): {err}");
    }
    match warn_re().captures(tokens[2]) {
        Some(c) => format!("execution error at ({}): {}", tokens[1], &c[1]),
        None => err.to_string(),
    }
}

/// Renders every template: `(name, output)` for non-partials in Helm's order.
pub fn render(root: &Work, opts: &Options) -> Result<Vec<(String, String)>, String> {
    let values = coalesce_values(root, &Value::Nil).map_err(|e| format!("error rendering values: {e}"))?;
    let release = map_of(vec![
        ("Name", Value::str(&opts.release_name)),
        ("Namespace", Value::str(&opts.namespace)),
        ("IsUpgrade", Value::Bool(false)),
        ("IsInstall", Value::Bool(opts.is_install)),
        ("Revision", Value::Int(if opts.is_install { 1 } else { 0 })),
        ("Service", Value::str("Helm")),
    ]);
    let top = map_of(vec![("Values", Value::Map(values)), ("Release", release), ("Capabilities", capabilities(opts))]);
    let mut tpls = Vec::new();
    all_templates(root, None, &root.meta.name, &top, &mut tpls);
    // Deepest paths first, then reverse lexical order (Go's sort.Reverse(byPathLen)).
    tpls.sort_by(|a, b| {
        let (ca, cb) = (a.key.matches('/').count(), b.key.matches('/').count());
        cb.cmp(&ca).then_with(|| b.key.cmp(&a.key))
    });
    let set = Set::root();
    for t in &tpls {
        let name: Rc<str> = Rc::from(t.key.as_str());
        let trees = parse::parse(&t.key, &name, &t.text).map_err(|e| {
            let msg = e.message.rsplit(": ").next().unwrap_or(&e.message).to_string();
            format!("parse error at ({}:{}): {msg}", t.key, parse::line_of(&t.text, e.pos))
        })?;
        set.add(&trees);
    }
    let mut exec = Exec::default();
    let mut out = Vec::new();
    for t in &tpls {
        let base = t.key.rsplit('/').next().unwrap_or(&t.key);
        if base.starts_with('_') {
            continue;
        }
        if let Value::Map(m) = &t.next {
            m.borrow_mut().insert(
                Key::from("Template"),
                map_of(vec![("Name", Value::str(&t.key)), ("BasePath", Value::str(&t.base))]),
            );
        }
        let mut buf = String::new();
        exec.execute(&set, &t.key, t.next.clone(), &mut buf).map_err(|e| cleanup_exec_error(&t.key, &e))?;
        out.push((t.key.clone(), buf.replace("<no value>", "")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_error_rewrite() {
        let e = "template: c/templates/d.yaml:72:18: executing \"c/templates/d.yaml\" at <fail \"x\">: error calling fail: HELM_ERR_STARTmsgHELM_ERR_END";
        assert_eq!(cleanup_exec_error("c/templates/d.yaml", e), "execution error at (c/templates/d.yaml:72:18): msg");
        let other = "template: a:1:2: executing \"a\" at <.X.y>: nil pointer evaluating interface {}.y";
        assert_eq!(cleanup_exec_error("a", other), other);
    }
}
