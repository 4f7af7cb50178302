//! Held cluster-object changes (`clusterResources.apply: Hold`): what applying a run's objects
//! would create, change (field by field) or delete, whether that reboots nodes, and a digest
//! an admin approves. The diff itself is pure.

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::apply::ObjKey;
use crate::api::status::{MAX_LISTED_CHANGES, PendingChange, PendingChanges};

/// Most field paths listed per object.
const MAX_FIELDS: usize = 20;

/// Paths under which `desired` and `live` differ, for the fields `desired` sets (the server
/// adds others, which are not ours to compare). Arrays compare element by element.
pub fn field_diff(desired: &Value, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in desired.as_object().into_iter().flatten() {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for part in ["labels", "annotations"] {
                    if let Some(d) = v.get(part) {
                        walk(&format!("metadata.{part}"), d, live.pointer(&format!("/metadata/{part}")), &mut out);
                    }
                }
            }
            _ => walk(k, v, live.get(k), &mut out),
        }
    }
    out
}

fn walk(path: &str, desired: &Value, live: Option<&Value>, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(d), Some(Value::Object(l))) => {
            for (k, v) in d {
                walk(&format!("{path}.{k}"), v, l.get(k), out);
            }
        }
        (Value::Array(d), Some(Value::Array(l))) => {
            for i in 0..d.len().max(l.len()) {
                match (d.get(i), l.get(i)) {
                    (Some(dv), lv) => walk(&format!("{path}[{i}]"), dv, lv, out),
                    (None, Some(_)) => out.push(format!("{path}[{i}] (removed)")),
                    (None, None) => {}
                }
            }
        }
        (d, Some(l)) if d == l => {}
        (Value::Null, None) => {}
        _ => out.push(path.to_string()),
    }
}

/// Whether applying this change makes the machine-config operator reboot nodes: creating an
/// ImageTagMirrorSet, changing or deleting any mirror set (creating an IDMS does not).
fn reboots(kind: &str, action: &str) -> bool {
    match kind {
        "ImageDigestMirrorSet" => action != "Create",
        "ImageTagMirrorSet" => true,
        _ => false,
    }
}

/// What a set's held changes are and how to approve them, for its conditions and events.
pub fn held_message(p: &PendingChanges) -> String {
    format!(
        "{} cluster object changes held for review{} (clusterResources.apply: Hold): approve them with spec.clusterResources.approvedChangesDigest: {}",
        p.objects.len(),
        if p.reboots_nodes { ", applying them reboots nodes" } else { "" },
        p.digest
    )
}

/// The held changes between `desired` (with their `live` counterparts, `None` when absent)
/// and the owned objects to delete; `None` when applying would change nothing.
pub fn pending(desired: &[(Value, Option<Value>)], deletes: &BTreeSet<ObjKey>) -> Option<PendingChanges> {
    let mut changes = Vec::new();
    for (d, live) in desired {
        let s = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        let (action, mut fields) = match live {
            None => ("Create", Vec::new()),
            Some(l) => {
                let f = field_diff(d, l);
                if f.is_empty() {
                    continue;
                }
                ("Update", f)
            }
        };
        if fields.len() > MAX_FIELDS {
            let more = fields.len() - MAX_FIELDS;
            fields.truncate(MAX_FIELDS);
            fields.push(format!("... and {more} more"));
        }
        changes.push(PendingChange {
            action: action.into(),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            fields,
        });
    }
    for (kind, namespace, name) in deletes {
        changes.push(PendingChange {
            action: "Delete".into(),
            kind: kind.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            fields: Vec::new(),
        });
    }
    if changes.is_empty() {
        return None;
    }
    changes.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    // The digest covers what would be written, so approving it approves exactly this content.
    let mut h = Sha256::new();
    let mut wanted: Vec<String> = desired.iter().map(|(d, _)| d.to_string()).collect();
    wanted.sort();
    for w in wanted {
        h.update(w.as_bytes());
        h.update(b"\n");
    }
    for c in &changes {
        h.update(format!("{} {} {} {}\n", c.action, c.kind, c.namespace, c.name).as_bytes());
    }
    let reboots_nodes = changes.iter().any(|c| reboots(&c.kind, &c.action));
    changes.truncate(MAX_LISTED_CHANGES);
    Some(PendingChanges { digest: format!("sha256:{}", hex::encode(h.finalize())), reboots_nodes, objects: changes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn idms(mirrors: &[&str]) -> Value {
        json!({"apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
               "metadata": {"name": "ns-a-idms-generic-0", "labels": {"o": "x"}},
               "spec": {"imageDigestMirrors": mirrors.iter().map(|m| json!({"source": "q.io/a", "mirrors": [m]})).collect::<Vec<_>>()}})
    }

    #[test]
    fn fields_are_compared_where_we_set_them() {
        let mut live = idms(&["r/a", "r/b"]);
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["labels"]["other"] = json!("kept");
        live["status"] = json!({"x": 1});
        assert!(field_diff(&idms(&["r/a", "r/b"]), &live).is_empty());
        assert_eq!(field_diff(&idms(&["r/a", "r/c"]), &live), vec!["spec.imageDigestMirrors[1].mirrors[0]"]);
        assert_eq!(
            field_diff(&idms(&["r/a", "r/b", "r/c"]), &live),
            vec!["spec.imageDigestMirrors[2]"],
            "an added entry is named"
        );
        assert_eq!(field_diff(&idms(&["r/a"]), &live), vec!["spec.imageDigestMirrors[1] (removed)"]);
        let mut relabelled = idms(&["r/a", "r/b"]);
        relabelled["metadata"]["labels"]["o"] = json!("y");
        assert_eq!(field_diff(&relabelled, &live), vec!["metadata.labels.o"]);
    }

    #[test]
    fn pending_changes_say_what_reboots_and_have_a_stable_digest() {
        let cs = json!({"apiVersion": "operators.coreos.com/v1alpha1", "kind": "CatalogSource",
                        "metadata": {"name": "cs", "namespace": "openshift-marketplace"}, "spec": {"image": "r/c@sha256:1"}});
        // Nothing to do: no change.
        assert_eq!(pending(&[(idms(&["r/a"]), Some(idms(&["r/a"])))], &BTreeSet::new()), None);
        // Creating an IDMS and a CatalogSource reboots nothing.
        let p = pending(&[(idms(&["r/a"]), None), (cs.clone(), None)], &BTreeSet::new()).unwrap();
        assert!(!p.reboots_nodes);
        assert_eq!(p.objects.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(), ["Create", "Create"]);
        assert_eq!(p.objects[0].kind, "CatalogSource", "sorted by kind");
        assert_eq!(p.objects[0].namespace, "openshift-marketplace");
        // Changing an IDMS does, and so does deleting an ITMS.
        let upd = pending(&[(idms(&["r/b"]), Some(idms(&["r/a"])))], &BTreeSet::new()).unwrap();
        assert!(upd.reboots_nodes);
        assert_eq!(upd.objects[0].fields, ["spec.imageDigestMirrors[0].mirrors[0]"]);
        let del: BTreeSet<ObjKey> = [("ImageTagMirrorSet".into(), String::new(), "old".into())].into();
        let d = pending(&[], &del).unwrap();
        assert!(d.reboots_nodes);
        assert_eq!((d.objects[0].action.as_str(), d.objects[0].name.as_str()), ("Delete", "old"));
        // The digest follows the content, not the order.
        let again = pending(&[(cs.clone(), None), (idms(&["r/a"]), None)], &BTreeSet::new()).unwrap();
        assert_eq!(again.digest, p.digest);
        let other = pending(&[(idms(&["r/z"]), None), (cs, None)], &BTreeSet::new()).unwrap();
        assert_ne!(other.digest, p.digest);
    }
}
