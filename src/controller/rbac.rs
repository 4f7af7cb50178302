//! The operator's permissions: every Kubernetes API call the controllers make (and those of
//! the Lease manager and the event recorder they use) as one RBAC rule list, each rule with
//! where it applies and why. `config/rbac` and the chart's RBAC template are generated from
//! [`RULES`]; `tests/rbac.rs` fails when either drifts, and asks a real apiserver whether
//! what they grant is exactly these rules (a missing or an extra permission fails it).

/// Where a rule applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Where image sets and deletes are reconciled: every namespace (a ClusterRole) without
    /// `--watch-namespaces`, each watched namespace (a Role there) with it.
    Watched,
    /// The operator's own namespace (`--namespace`, the chart's release namespace).
    Operator,
    /// One namespace the operator writes produced objects into, whatever the image set's
    /// namespace (a Role there).
    Fixed(&'static str),
    /// The whole cluster (a ClusterRole): cluster-scoped kinds, or a list over every
    /// namespace.
    Cluster,
}

/// One RBAC rule of the operator.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Where it applies.
    pub scope: Scope,
    /// API group (`""`: the core group).
    pub group: &'static str,
    /// Resource, or `resource/subresource`.
    pub resource: &'static str,
    /// Verbs, as RBAC spells them.
    pub verbs: &'static [&'static str],
    /// The object names it is limited to (empty: any name).
    pub names: &'static [&'static str],
    /// Why the operator needs it: the code that makes the call.
    pub why: &'static str,
}

/// The Lease leader election takes in the operator's namespace.
pub const LEASE: &str = "imageset-operator";

/// The namespaces a mirror run's objects go to outside image sets' own: as `render` places
/// them, and as oc-mirror writes them.
pub const SIGNATURES_NS: &str = "openshift-config-managed";
/// See [`SIGNATURES_NS`].
pub const CATALOG_SOURCES_NS: &str = "openshift-marketplace";
/// See [`SIGNATURES_NS`].
pub const UPDATE_SERVICES_NS: &str = "openshift-update-service";

const fn rule(
    scope: Scope,
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    why: &'static str,
) -> Rule {
    Rule { scope, group, resource, verbs, names: &[], why }
}

const MIRROR: &str = "mirror.openshift.io";

/// Every permission the operator has, and nothing else.
pub const RULES: &[Rule] = &[
    // Where image sets and deletes are reconciled.
    rule(
        Scope::Watched,
        MIRROR,
        "imagesetconfigurations",
        &["list", "watch", "patch"],
        "The controller watches image sets (list, watch). It adds and removes its finalizer on \
         those of namespaces allowed to produce cluster objects (patch).",
    ),
    rule(
        Scope::Watched,
        MIRROR,
        "imagesetconfigurations/status",
        &["patch"],
        "Progress and outcome of each run, written with server-side apply.",
    ),
    rule(
        Scope::Watched,
        MIRROR,
        "deleteimagesetconfigurations",
        &["list", "watch"],
        "The delete controller watches deletes.",
    ),
    rule(
        Scope::Watched,
        MIRROR,
        "deleteimagesetconfigurations/status",
        &["patch"],
        "The plan, its digest and the outcome of a delete, written with server-side apply.",
    ),
    rule(
        Scope::Watched,
        "",
        "secrets",
        &["get"],
        "Registry credentials: the one Secret spec.authSecretRef of an image set or delete names, \
         read from its own namespace. Never listed or watched.",
    ),
    rule(
        Scope::Watched,
        "",
        "configmaps",
        &["get", "create", "patch", "delete"],
        "Read: the CA bundles spec.registries[].caBundle names and the CatalogSource templates \
         (configmap:<name>/<key>) of an image set, in its namespace. Written beside the image set or \
         delete, with server-side apply (create the first time, patch after): the dry-run plan \
         <name>-dry-run and the delete plan <name>-delete-plan; their names follow the image set's, \
         so resourceNames cannot narrow this. Delete: pruning removes a stale dry-run plan (it \
         carries the image set's owner label) after a run that is not a dry run.",
    ),
    rule(
        Scope::Watched,
        "events.k8s.io",
        "events",
        &["create", "patch"],
        "Events about image sets and deletes, in their namespace (patch: a repeated event's count).",
    ),
    // The operator's own namespace.
    rule(
        Scope::Operator,
        "coordination.k8s.io",
        "leases",
        &["create"],
        "Leader election creates its Lease the first time (create cannot be limited to a name).",
    ),
    Rule {
        scope: Scope::Operator,
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "patch"],
        names: &[LEASE],
        why: "Leader election reads and renews its Lease, and no other.",
    },
    rule(
        Scope::Operator,
        "batch",
        "jobs",
        &["get", "create", "delete"],
        "Shard Jobs (spec.shards above 1) run in the operator's namespace: created, followed (get) and \
         deleted once their reports are merged, or when the run is stopped.",
    ),
    rule(
        Scope::Operator,
        "",
        "pods",
        &["get"],
        "The operator reads its own Pod once at start for the image its shard Jobs run (unless \
         --shard-image names it).",
    ),
    rule(
        Scope::Operator,
        "",
        "configmaps",
        &["get", "create", "patch", "delete"],
        "A shard Job's request (written by the operator) and each shard's progress and report (written \
         by the shard pods, which run as this ServiceAccount, with server-side apply), in the \
         operator's namespace, owned by the Job; deleted once merged.",
    ),
    // Where produced objects go, outside image sets' namespaces.
    rule(
        Scope::Fixed(SIGNATURES_NS),
        "",
        "configmaps",
        &["get", "create", "patch", "delete"],
        "The release signature ConfigMap the cluster-version operator reads: compared (get), applied \
         with server-side apply (create, patch), pruned when no longer produced (delete).",
    ),
    rule(
        Scope::Fixed(CATALOG_SOURCES_NS),
        "operators.coreos.com",
        "catalogsources",
        &["get", "list", "create", "patch", "delete"],
        "CatalogSources of mirrored catalogs: compared, applied, listed by owner label and pruned.",
    ),
    rule(
        Scope::Fixed(UPDATE_SERVICES_NS),
        "updateservice.operator.openshift.io",
        "updateservices",
        &["get", "list", "create", "patch", "delete"],
        "The UpdateService of a mirrored graph image: compared, applied, listed by owner label and \
         pruned.",
    ),
    // The whole cluster.
    rule(
        Scope::Cluster,
        "config.openshift.io",
        "imagedigestmirrorsets",
        &["get", "list", "create", "patch", "delete"],
        "Cluster-scoped. Applied for image sets of namespaces allowed to produce cluster objects \
         (--allowed-namespaces), listed by owner label and pruned when no longer produced.",
    ),
    rule(
        Scope::Cluster,
        "config.openshift.io",
        "imagetagmirrorsets",
        &["get", "list", "create", "patch", "delete"],
        "Cluster-scoped; as ImageDigestMirrorSets.",
    ),
    rule(
        Scope::Cluster,
        MIRROR,
        "imagesetconfigurations",
        &["list"],
        "A delete protects the images every live image set mirroring to the same registry needs, \
         in any namespace and whichever installation reconciles it.",
    ),
    rule(
        Scope::Cluster,
        "",
        "configmaps",
        &["list"],
        "Pruning lists ConfigMaps by owner label in every namespace: the signature ConfigMap in \
         openshift-config-managed, and stale dry-run plans beside image sets.",
    ),
];

/// Who an installation's roles are for, and where it watches.
#[derive(Clone, Debug)]
pub struct Install<'a> {
    /// Name of the ClusterRole, and prefix of the other roles and every binding.
    pub name: &'a str,
    /// The operator's namespace, where its ServiceAccount and Lease are.
    pub namespace: &'a str,
    /// Its ServiceAccount.
    pub service_account: &'a str,
    /// `--watch-namespaces` (empty: every namespace).
    pub watch_namespaces: &'a [String],
}

impl Install<'_> {
    /// Whether a rule of `scope` grants in namespace `ns` (`None`: across the cluster).
    pub fn grants(&self, scope: Scope, ns: Option<&str>) -> bool {
        match (scope, ns) {
            (Scope::Cluster, _) => true,
            (Scope::Watched, _) if self.watch_namespaces.is_empty() => true,
            (_, None) => false,
            (Scope::Watched, Some(ns)) => self.watch_namespaces.iter().any(|w| w == ns),
            (Scope::Operator, Some(ns)) => ns == self.namespace,
            (Scope::Fixed(f), Some(ns)) => ns == f,
        }
    }
}

/// Whether the rules grant `verb` on `group`/`resource` to `install` in `ns` (`None`:
/// across the cluster), for the object `name` (`None`: any object, as a list or create
/// asks). Pure: what an apiserver must answer for the installation.
pub fn allows(
    install: &Install,
    ns: Option<&str>,
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    RULES.iter().any(|r| {
        install.grants(r.scope, ns)
            && r.group == group
            && r.resource == resource
            && r.verbs.contains(&verb)
            && (r.names.is_empty() || name.is_some_and(|n| r.names.contains(&n)))
    })
}

/// The command that regenerates the files made from [`RULES`].
pub const REGENERATE: &str = "IMAGESET_REGENERATE=1 cargo test --test rbac";

/// How names, labels and namespaces are written: as values, or as Helm template actions.
struct Words {
    name: String,
    labels: String,
    service_account: String,
    operator_ns: String,
}

fn quoted(items: &[&str]) -> String {
    let q: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", q.join(", "))
}

/// `text` as `# ` comment lines indented by `indent`, wrapped before 100 columns.
fn comment(indent: &str, text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + 2 + line.len() + 1 + word.len() > 99 {
            out += &format!("{indent}# {line}\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    if !line.is_empty() {
        out += &format!("{indent}# {line}\n");
    }
    out
}

/// The rules of `scope`, as a YAML list under `rules:`, each with its reason.
fn rules_text(scope: impl Fn(Scope) -> bool) -> String {
    let mut out = String::new();
    for r in RULES.iter().filter(|r| scope(r.scope)) {
        out += &comment("  ", r.why);
        out += &format!("  - apiGroups: [{:?}]\n    resources: [{:?}]\n", r.group, r.resource);
        if !r.names.is_empty() {
            out += &format!("    resourceNames: {}\n", quoted(r.names));
        }
        out += &format!("    verbs: {}\n", quoted(r.verbs));
    }
    out
}

fn metadata(w: &Words, name: &str, ns: Option<&str>) -> String {
    let ns = ns.map(|n| format!("  namespace: {n}\n")).unwrap_or_default();
    format!("metadata:\n  name: {name}\n{ns}  labels:\n{}\n", w.labels)
}

fn role(w: &Words, suffix: &str, ns: Option<&str>, rules: &str) -> String {
    let kind = if ns.is_some() { "Role" } else { "ClusterRole" };
    let name = format!("{}{suffix}", w.name);
    format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\n{}rules:\n{rules}", metadata(w, &name, ns))
}

fn binding(w: &Words, suffix: &str, ns: Option<&str>) -> String {
    let (kind, role_kind) = if ns.is_some() { ("RoleBinding", "Role") } else { ("ClusterRoleBinding", "ClusterRole") };
    let name = format!("{}{suffix}", w.name);
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\n{}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: {role_kind}\n  name: {name}\nsubjects:\n  - kind: ServiceAccount\n    name: {}\n    namespace: {}\n",
        metadata(w, &name, ns),
        w.service_account,
        w.operator_ns
    )
}

/// The namespaces of [`Scope::Fixed`] rules, each once, in the order of [`RULES`].
pub fn fixed_namespaces() -> Vec<&'static str> {
    let mut out = Vec::new();
    for r in RULES {
        if let Scope::Fixed(ns) = r.scope
            && !out.contains(&ns)
        {
            out.push(ns);
        }
    }
    out
}

/// What the ClusterRole's two parts are for.
const CLUSTER_NOTE: &str = "Across the cluster, whatever the operator watches.";
const WATCHED_NOTE: &str = "In every namespace: image sets and deletes are reconciled wherever they are. With \
     watched namespaces (--watch-namespaces, the chart's watchNamespaces) these rules are a Role in each of \
     them instead.";

/// The ClusterRole's rules: the cluster's, and the watched namespaces' enclosed by `watched`
/// (the chart's condition), or none of them when `watched` is `None`.
fn cluster_rules(watched: Option<(&str, &str)>) -> String {
    // A section's note stands apart from the first rule's reason.
    let note = |text| comment("  ", text) + "  #\n";
    let mut out = note(CLUSTER_NOTE) + &rules_text(|s| s == Scope::Cluster);
    if let Some((open, close)) = watched {
        out += &format!("{open}{}{}{close}", note(WATCHED_NOTE), rules_text(|s| s == Scope::Watched));
    }
    out
}

/// Name suffixes of the roles and bindings of each scope but the cluster's.
const WATCHED_SUFFIX: &str = "-watched";
const OPERATOR_SUFFIX: &str = "-leader-election";
const FIXED_SUFFIX: &str = "-produced-objects";

fn header(what: &str) -> String {
    let intro = format!(
        "{what} Generated from the rule list in src/controller/rbac.rs, each rule with its reason; do not \
         edit: regenerate with"
    );
    format!("{}#     {REGENERATE}\n", comment("", &intro))
}

/// An installation's roles and bindings as YAML documents: (roles, bindings). Pure.
pub fn manifests(install: &Install) -> (String, String) {
    let w = Words {
        name: install.name.to_string(),
        labels: format!("    app.kubernetes.io/name: {}", install.name),
        service_account: install.service_account.to_string(),
        operator_ns: install.namespace.to_string(),
    };
    let everywhere = install.watch_namespaces.is_empty();
    let mut roles = vec![role(&w, "", None, &cluster_rules(everywhere.then_some(("", ""))))];
    let mut bindings = vec![binding(&w, "", None)];
    for ns in install.watch_namespaces {
        roles.push(role(&w, WATCHED_SUFFIX, Some(ns), &rules_text(|s| s == Scope::Watched)));
        bindings.push(binding(&w, WATCHED_SUFFIX, Some(ns)));
    }
    roles.push(role(&w, OPERATOR_SUFFIX, Some(install.namespace), &rules_text(|s| s == Scope::Operator)));
    bindings.push(binding(&w, OPERATOR_SUFFIX, Some(install.namespace)));
    for ns in fixed_namespaces() {
        roles.push(role(&w, FIXED_SUFFIX, Some(ns), &rules_text(|s| s == Scope::Fixed(ns))));
        bindings.push(binding(&w, FIXED_SUFFIX, Some(ns)));
    }
    let missing = comment(
        "",
        &format!(
            "The Roles in {} must go to namespaces that exist: apply again once the OpenShift Update \
             Service (its namespace) is installed.",
            fixed_namespaces().join(", ")
        ),
    );
    (
        header("The operator's roles.") + &missing + &roles.join("---\n"),
        header("Bindings of the operator's roles to its ServiceAccount.") + &bindings.join("---\n"),
    )
}

/// The chart's `templates/rbac.yaml`: the same roles, Roles per watched namespace when the
/// value `watchNamespaces` is set, and the Role of each produced-object namespace that
/// `rbac.objectNamespaces` lists. Pure.
pub fn chart_template() -> String {
    let w = Words {
        name: "{{ $name }}".into(),
        labels: "    {{- include \"imageset-operator.labels\" $ | nindent 4 }}".into(),
        service_account: "{{ $sa }}".into(),
        operator_ns: "{{ $.Release.Namespace }}".into(),
    };
    let mut out = format!(
        "{{{{- /*\n{}*/}}}}\n{{{{- $name := include \"imageset-operator.fullname\" . }}}}\n{{{{- $sa := include \"imageset-operator.serviceAccountName\" . }}}}\n",
        header("The operator's roles and their bindings.")
    );
    let cluster = cluster_rules(Some(("{{- if not .Values.watchNamespaces }}\n", "{{- end }}\n")));
    out += &format!("{}---\n{}", role(&w, "", None, &cluster), binding(&w, "", None));
    out += &format!(
        "{{{{- range $ns := .Values.watchNamespaces }}}}\n---\n{}---\n{}{{{{- end }}}}\n",
        role(&w, WATCHED_SUFFIX, Some("{{ $ns }}"), &rules_text(|s| s == Scope::Watched)),
        binding(&w, WATCHED_SUFFIX, Some("{{ $ns }}"))
    );
    out += &format!(
        "---\n{}---\n{}",
        role(&w, OPERATOR_SUFFIX, Some(&w.operator_ns), &rules_text(|s| s == Scope::Operator)),
        binding(&w, OPERATOR_SUFFIX, Some(&w.operator_ns))
    );
    for ns in fixed_namespaces() {
        out += &format!(
            "{{{{- if has {ns:?} $.Values.rbac.objectNamespaces }}}}\n---\n{}---\n{}{{{{- end }}}}\n",
            role(&w, FIXED_SUFFIX, Some(ns), &rules_text(|s| s == Scope::Fixed(ns))),
            binding(&w, FIXED_SUFFIX, Some(ns))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERBS: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

    #[test]
    fn every_rule_is_distinct_explained_and_spelled_as_rbac_spells_it() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(!r.verbs.is_empty() && r.verbs.iter().all(|v| VERBS.contains(v)), "{r:?}");
            assert!(r.why.len() > 20 && r.why.ends_with('.'), "{r:?}");
            // `create` and list-like verbs carry no name, so names cannot limit them.
            assert!(r.names.is_empty() || r.verbs.iter().all(|v| ["get", "patch", "update", "delete"].contains(v)));
            let same = RULES[i + 1..]
                .iter()
                .find(|o| (o.scope, o.group, o.resource, o.names) == (r.scope, r.group, r.resource, r.names));
            assert!(same.is_none(), "two rules for {r:?}");
        }
        // Never a listing of Secrets, and no write anywhere but where the operator writes.
        let default = Install { name: "x", namespace: "op", service_account: "x", watch_namespaces: &[] };
        for verb in ["list", "watch"] {
            assert!(!allows(&default, Some("team"), "", "secrets", verb, None));
        }
        assert!(!allows(&default, Some("team"), "coordination.k8s.io", "leases", "create", None));
        assert!(!allows(&default, Some("team"), "operators.coreos.com", "catalogsources", "create", None));
    }

    #[test]
    fn watch_namespaces_turn_the_watched_rules_into_roles_there() {
        let watched = ["team-a".to_string()];
        let scoped = Install { name: "x", namespace: "op", service_account: "x", watch_namespaces: &watched };
        let secret = |i: &Install, ns| allows(i, ns, "", "secrets", "get", Some("creds"));
        assert!(secret(&scoped, Some("team-a")));
        assert!(!secret(&scoped, Some("team-b")) && !secret(&scoped, None));
        let everywhere = Install { watch_namespaces: &[], ..scoped.clone() };
        assert!(secret(&everywhere, Some("team-b")) && secret(&everywhere, None));
        // The Lease: in the operator's namespace, by its name.
        let lease = |ns, name| allows(&scoped, Some(ns), "coordination.k8s.io", "leases", "patch", name);
        assert!(lease("op", Some(LEASE)));
        assert!(!lease("op", Some("other")) && !lease("op", None) && !lease("team-a", Some(LEASE)));
        let (roles, bindings) = manifests(&scoped);
        assert_eq!(roles.matches("\nkind: Role\n").count(), 2 + fixed_namespaces().len());
        assert!(roles.contains("name: x-watched\n  namespace: team-a\n"), "{roles}");
        assert!(bindings.contains("  kind: Role\n  name: x-watched\n"), "{bindings}");
        // Without watched namespaces, the watched rules join the ClusterRole.
        let (all, _) = manifests(&everywhere);
        assert!(!all.contains("-watched"));
        let cluster = all.split("---\n").find(|d| d.contains("kind: ClusterRole\n")).unwrap();
        assert!(cluster.contains("resources: [\"secrets\"]"), "{cluster}");
    }

    #[test]
    fn reasons_are_wrapped_comments() {
        let c = comment("  ", &"word ".repeat(40));
        assert!(c.lines().all(|l| l.starts_with("  # ") && l.len() < 100), "{c}");
        assert_eq!(c.split_whitespace().filter(|w| *w == "word").count(), 40);
    }
}
