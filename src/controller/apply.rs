//! Cluster objects an image set produces: server-side applied under one field manager,
//! labelled with their owner, pruned by that label when no longer produced, removed when the
//! image set goes (unless kept). Also the image set's registry access, read from its own
//! namespace only.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::ImageSetConfiguration;
use crate::api::names::{FIELD_MANAGER, OWNER_LABEL};
use crate::registry::sources::RegistriesConf;
use crate::registry::{ClientOptions, DockerAuth};
use crate::render::CatalogTemplate;

/// Every kind an image set may produce: (apiVersion, kind).
pub const KINDS: &[(&str, &str)] = &[
    ("config.openshift.io/v1", "ImageDigestMirrorSet"),
    ("config.openshift.io/v1", "ImageTagMirrorSet"),
    ("operators.coreos.com/v1alpha1", "CatalogSource"),
    ("updateservice.operator.openshift.io/v1", "UpdateService"),
    ("v1", "ConfigMap"),
];

/// The owner label value of an image set: `<namespace>.<name>`, or a digest of it when that
/// is not a valid label value.
pub fn owner_id(isc: &ImageSetConfiguration) -> String {
    let id = format!("{}.{}", isc.namespace().unwrap_or_default(), isc.name_any());
    if id.len() <= 63 { id } else { format!("h-{}", &hex::encode(Sha256::digest(id.as_bytes()))[..40]) }
}

fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

fn api_for(client: &Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// (kind, namespace, name) of an object.
pub type ObjKey = (String, String, String);

fn key_of(v: &Value) -> ObjKey {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

/// An object as applied: with the owner label.
fn labelled(o: &Value, owner: &str) -> Value {
    let mut o = o.clone();
    o["metadata"]["labels"][OWNER_LABEL] = Value::String(owner.to_string());
    o
}

/// The API of an object's kind, in its namespace.
fn api_of(client: &Client, o: &Value) -> (Api<DynamicObject>, String) {
    let (kind, ns, name) = key_of(o);
    let ar = resource(o["apiVersion"].as_str().unwrap_or_default(), &kind);
    (api_for(client, &ar, (!ns.is_empty()).then_some(ns.as_str())), name)
}

/// What applying `objects` would do: each object as it would be applied with the live one
/// (`None` when absent), and the owned objects that would be pruned.
pub async fn compare(
    client: &Client,
    owner: &str,
    objects: &[Value],
) -> Result<(Vec<(Value, Option<Value>)>, BTreeSet<ObjKey>), kube::Error> {
    let mut pairs = Vec::new();
    for o in objects {
        let o = labelled(o, owner);
        let (api, name) = api_of(client, &o);
        let live = match api.get_opt(&name).await {
            Ok(l) => l.map(|l| serde_json::to_value(l).unwrap_or_default()),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => return Err(e),
        };
        pairs.push((o, live));
    }
    let keep = keys(objects);
    let deletes = owned(client, owner).await?.into_iter().map(|(_, k)| k).filter(|k| !keep.contains(k)).collect();
    Ok((pairs, deletes))
}

/// What applying did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Objects whose resourceVersion moved.
    pub changed: usize,
    /// Objects left alone because they exist and are not this image set's: the object, and
    /// who owns it (empty: nobody the operator knows).
    pub conflicts: Vec<(ObjKey, String)>,
}

impl Applied {
    /// "ImageDigestMirrorSet x (owned by team.a-x)", for conditions and events.
    pub fn conflict_message(&self) -> Option<String> {
        let list: Vec<String> = self
            .conflicts
            .iter()
            .map(|((kind, ns, name), by)| {
                let at = if ns.is_empty() { name.clone() } else { format!("{ns}/{name}") };
                let by =
                    if by.is_empty() { "not created by this operator".to_string() } else { format!("owned by {by}") };
                format!("{kind} {at} ({by})")
            })
            .collect();
        (!list.is_empty()).then(|| format!("left alone, not this image set's: {}", list.join(", ")))
    }
}

/// Applies `objects` with the owner label, except over an object that exists without this
/// owner's label (created by someone else, or by another image set), which is left alone and
/// reported. Applying the same content again changes nothing, so nodes are not disrupted by
/// resyncs.
pub async fn apply(client: &Client, owner: &str, objects: &[Value]) -> Result<Applied, kube::Error> {
    let mut done = Applied::default();
    for o in objects {
        let o = labelled(o, owner);
        let (api, name) = api_of(client, &o);
        let live = api.get_opt(&name).await?;
        if let Some(live) = &live {
            let by = live.labels().get(OWNER_LABEL).cloned().unwrap_or_default();
            if by != owner {
                done.conflicts.push((key_of(&o), by));
                continue;
            }
        }
        let before = live.and_then(|x| x.metadata.resource_version);
        let after = api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&o)).await?;
        if before != after.metadata.resource_version {
            done.changed += 1;
        }
    }
    Ok(done)
}

/// A dry run's plan as a ConfigMap `<name>-dry-run` beside the image set (owned by it, so it
/// goes with it); returns its name.
pub async fn dry_run_config_map(
    client: &Client,
    isc: &ImageSetConfiguration,
    owner: &str,
    mapping: &str,
) -> Result<String, kube::Error> {
    use kube::Resource as _;
    let ns = isc.namespace().unwrap_or_default();
    let name = format!("{}-dry-run", isc.name_any());
    let owner_ref = isc.controller_owner_ref(&());
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {OWNER_LABEL: owner}, "ownerReferences": owner_ref.into_iter().collect::<Vec<_>>()},
        "data": {"mapping.txt": mapping},
    });
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&cm)).await?;
    Ok(name)
}

/// Every object carrying the owner label, of the kinds the cluster serves.
async fn owned(client: &Client, owner: &str) -> Result<Vec<(ApiResource, ObjKey)>, kube::Error> {
    let mut out = Vec::new();
    let lp = ListParams::default().labels(&format!("{OWNER_LABEL}={owner}"));
    for (api_version, kind) in KINDS {
        let ar = resource(api_version, kind);
        // Produced objects of a namespaced kind live in one namespace: listing there needs no
        // cluster-wide right to read them. ConfigMaps are also the dry-run plans beside image
        // sets, so they are listed everywhere.
        let scope = match *kind {
            "CatalogSource" => Some(super::rbac::CATALOG_SOURCES_NS),
            "UpdateService" => Some(super::rbac::UPDATE_SERVICES_NS),
            _ => None,
        };
        let list = match api_for(client, &ar, scope).list(&lp).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for obj in list.items {
            let k = (kind.to_string(), obj.metadata.namespace.clone().unwrap_or_default(), obj.name_any());
            out.push((ar.clone(), k));
        }
    }
    Ok(out)
}

/// Deletes objects with the owner label that are not in `keep`; returns what was deleted.
/// Kinds the cluster does not serve are skipped.
pub async fn prune(client: &Client, owner: &str, keep: &BTreeSet<ObjKey>) -> Result<Vec<ObjKey>, kube::Error> {
    let mut deleted = Vec::new();
    for (ar, k) in owned(client, owner).await? {
        if keep.contains(&k) {
            continue;
        }
        let (_, ns, name) = &k;
        match api_for(client, &ar, (!ns.is_empty()).then_some(ns.as_str())).delete(name, &DeleteParams::default()).await
        {
            Ok(_) => deleted.push(k),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The keys of rendered objects.
pub fn keys(objects: &[Value]) -> BTreeSet<ObjKey> {
    objects.iter().map(key_of).collect()
}

/// Registry access for an image set: credentials from its `authSecretRef` Secret and CAs from
/// `registries[].caBundle` ConfigMaps, both in its own namespace; insecure hosts as marked.
pub async fn access(client: &Client, isc: &ImageSetConfiguration) -> Result<ClientOptions, String> {
    let ns = isc.namespace().unwrap_or_default();
    let mut opts = access_in(client, &ns, isc.spec.auth_secret_ref.as_ref(), &isc.spec.registries).await?;
    if let Some(value) = &isc.spec.registries_conf {
        let field = "spec.registriesConf";
        let named = template_ref(value).ok_or_else(|| format!("{field}: must be configmap:<name>/<key>"))?;
        let text = config_map_key(client, &ns, named, field).await?;
        let conf = RegistriesConf::parse(&text, value).map_err(|e| format!("{field}: {e}"))?;
        opts.sources = Some(std::sync::Arc::new(conf));
    }
    Ok(opts)
}

/// Registry access from a Secret and registry settings in namespace `ns` (an image set's or
/// a delete's).
pub async fn access_in(
    client: &Client,
    ns: &str,
    auth_secret_ref: Option<&crate::api::isc::LocalObjectReference>,
    registries: &[crate::api::isc::RegistrySettings],
) -> Result<ClientOptions, String> {
    let ns = ns.to_string();
    let mut opts = ClientOptions::default();
    if let Some(r) = auth_secret_ref {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
        let s = secrets
            .get(&r.name)
            .await
            .map_err(|e| format!("spec.authSecretRef: Secret {ns}/{}: {}", r.name, brief(&e)))?;
        let data = s.data.unwrap_or_default();
        let bytes = data
            .get(".dockerconfigjson")
            .ok_or_else(|| format!("spec.authSecretRef: Secret {ns}/{} has no .dockerconfigjson key", r.name))?;
        opts.auth =
            DockerAuth::parse(&bytes.0).map_err(|e| format!("spec.authSecretRef: Secret {ns}/{}: {e}", r.name))?;
    }
    for (i, reg) in registries.iter().enumerate() {
        if reg.insecure {
            opts.insecure.push(reg.host.clone());
        }
        if let Some(ca) = &reg.ca_bundle {
            let field = format!("spec.registries[{i}].caBundle");
            let pem = config_map_key(client, &ns, (&ca.name, &ca.key), &field).await?;
            opts.ca_pems.push(pem.into_bytes());
        }
    }
    Ok(opts)
}

/// The text under `key` of ConfigMap `name` in namespace `ns`; errors name `field`.
async fn config_map_key(client: &Client, ns: &str, (name, key): (&str, &str), field: &str) -> Result<String, String> {
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = cms.get(name).await.map_err(|e| format!("{field}: ConfigMap {ns}/{name}: {}", brief(&e)))?;
    cm.data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| format!("{field}: ConfigMap {ns}/{name} has no key {key:?}"))
}

/// How the controller names a CatalogSource template: a key of a ConfigMap in the image
/// set's namespace (the operator's pod has no files of the image set's author).
pub const TEMPLATE_PREFIX: &str = "configmap:";

/// `configmap:<name>/<key>` as (name, key). Pure.
pub fn template_ref(value: &str) -> Option<(&str, &str)> {
    let (name, key) = value.strip_prefix(TEMPLATE_PREFIX)?.split_once('/')?;
    (!name.is_empty() && !key.is_empty() && !key.contains('/')).then_some((name, key))
}

/// The CatalogSource templates an image set names, read from ConfigMaps in its namespace and
/// checked, so that a bad one stops the run before anything is copied.
pub async fn templates(client: &Client, isc: &ImageSetConfiguration) -> Result<Vec<CatalogTemplate>, String> {
    let ns = isc.namespace().unwrap_or_default();
    let mut out = Vec::new();
    for (i, op) in isc.spec.mirror.operators.iter().enumerate() {
        let Some(value) = &op.target_catalog_source_template else { continue };
        let field = format!("spec.mirror.operators[{i}].targetCatalogSourceTemplate");
        let named = template_ref(value).ok_or_else(|| format!("{field}: {TEMPLATE_NOTE}"))?;
        let text = config_map_key(client, &ns, named, &field).await?;
        let t = CatalogTemplate { catalog: op.catalog.clone(), path: value.clone(), text };
        crate::render::check_template(&t).map_err(|e| format!("{field}: {e}"))?;
        out.push(t);
    }
    Ok(out)
}

/// What a template reference must look like in the cluster.
pub const TEMPLATE_NOTE: &str =
    "in the cluster a template is a ConfigMap key in the image set's namespace, written configmap:<name>/<key>";

/// An API error without response bodies (which could echo object content).
fn brief(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.reason, s.code),
        other => other.to_string(),
    }
}
