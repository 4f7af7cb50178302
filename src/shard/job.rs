//! The objects of a shard Job, as the operator creates them in its own namespace. Pure.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{JOB_LABEL, PLAN_ANNOTATION, SET_ANNOTATION, SET_UID_LABEL, SetRef};

/// Where shard pods keep the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheVolume {
    /// The operator's own PersistentVolumeClaim (ReadWriteMany): what one shard or the operator
    /// fetched, the others read.
    Claim(String),
    /// An `emptyDir` of each pod: for clusters without ReadWriteMany storage.
    None,
}

impl CacheVolume {
    /// `pvc:<claim>` or `none`.
    pub fn parse(s: &str) -> Result<CacheVolume, String> {
        match s.split_once(':') {
            Some(("pvc", claim)) if !claim.is_empty() => Ok(CacheVolume::Claim(claim.to_string())),
            _ if s == "none" => Ok(CacheVolume::None),
            _ => Err(format!("{s:?}: must be pvc:<claim name> or none")),
        }
    }
}

/// How shard Jobs are made: operator settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSettings {
    /// The operator's namespace, where Jobs run.
    pub namespace: String,
    /// The operator's image (shards run the same binary).
    pub image: String,
    /// The operator's ServiceAccount (shards have its rights and no other).
    pub service_account: String,
    /// The cache volume.
    pub cache: CacheVolume,
    /// Where the cache volume is mounted (the operator's `--cache-dir`).
    pub cache_dir: PathBuf,
    /// Failed pods per index before the index fails.
    pub backoff_per_index: i32,
    /// Seconds a finished Job is kept before Kubernetes deletes it.
    pub ttl_seconds: i32,
    /// The shard container's resources (a ResourceRequirements), if any.
    pub resources: Option<Value>,
}

/// Labels of a shard Job's objects.
fn labels(job: &str, set: &SetRef) -> Value {
    json!({
        // Not the operator's own name: its Service and Deployment select by that.
        "app.kubernetes.io/name": "imageset-operator-shard",
        "app.kubernetes.io/component": "shard",
        "app.kubernetes.io/managed-by": "imageset-operator",
        JOB_LABEL: job,
        SET_UID_LABEL: set.uid,
    })
}

/// The restricted security context the operator itself runs with.
fn security() -> (Value, Value) {
    let pod = json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
    let container = json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    (pod, container)
}

/// The Indexed Job of `shards` shards, `parallelism` at once, for `set`'s plan `plan_digest`.
pub fn job(s: &JobSettings, name: &str, set: &SetRef, plan_digest: &str, shards: usize, parallelism: usize) -> Value {
    let cache_dir = s.cache_dir.display().to_string();
    let cache = match &s.cache {
        CacheVolume::Claim(claim) => json!({"name": "cache", "persistentVolumeClaim": {"claimName": claim}}),
        CacheVolume::None => json!({"name": "cache", "emptyDir": {}}),
    };
    let (pod_security, container_security) = security();
    let mut job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": s.namespace,
            "labels": labels(name, set),
            "annotations": {
                SET_ANNOTATION: format!("{}/{}", set.namespace, set.name),
                PLAN_ANNOTATION: plan_digest,
            },
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": parallelism,
            "backoffLimitPerIndex": s.backoff_per_index,
            // A replacement starts only once the pod it replaces is gone: never two pods of
            // one index at once.
            "podReplacementPolicy": "Failed",
            "ttlSecondsAfterFinished": s.ttl_seconds,
            "template": {
                "metadata": {"labels": labels(name, set)},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": s.service_account,
                    "securityContext": pod_security,
                    // Shards are for spreading over nodes: the scheduler does not spread a
                    // Job's pods by itself.
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {JOB_LABEL: name}},
                    }],
                    "containers": [{
                        "name": "shard",
                        "image": s.image,
                        "args": [
                            "shard",
                            format!("--request={}", super::request_prefix(name)),
                            format!("--namespace={}", s.namespace),
                            format!("--cache-dir={cache_dir}"),
                        ],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "SHARD_FAILURES_BEFORE", "valueFrom": {"fieldRef": {
                                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-index-failure-count']"}}},
                        ],
                        "securityContext": container_security,
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": [
                            {"name": "cache", "mountPath": cache_dir},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [cache, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    });
    if let Some(r) = &s.resources {
        job["spec"]["template"]["spec"]["containers"][0]["resources"] = r.clone();
    }
    job
}

/// The ConfigMap holding the request of index `index` of a Job, owned by the Job (it goes when
/// the Job goes).
pub fn request_config_map(
    s: &JobSettings,
    (job, job_uid): (&str, &str),
    set: &SetRef,
    index: usize,
    packed: &[u8],
) -> Value {
    use base64::Engine as _;
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": super::request_name(&super::request_prefix(job), index),
            "namespace": s.namespace,
            "labels": labels(job, set),
            "ownerReferences": [owner(job, job_uid)],
        },
        "binaryData": {super::REQUEST_KEY: base64::engine::general_purpose::STANDARD.encode(packed)},
    })
}

/// An owner reference to the Job `job`.
pub fn owner(job: &str, uid: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": uid, "blockOwnerDeletion": false})
}

/// A Job's name: the image set's naming prefix (namespace, name, hash) and a hash of the
/// plan and the generation it runs for, at most 52 characters (a Job's pods add
/// `-<index>-<random>` to it). An operator that restarts finds the Job of its run again; a
/// new generation never meets the Job of the run it stopped.
pub fn job_name(prefix: &str, plan_digest: &str, generation: i64) -> String {
    let short: String = prefix.chars().take(32).collect();
    let hash = crate::image::manifest::sha256_digest(format!("{prefix}\n{plan_digest}\n{generation}").as_bytes());
    format!("{}-shards-{}", short.trim_end_matches(['-', '.']), &hash[7..17]).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_is_indexed_restricted_and_mounts_the_cache_where_the_operator_has_it() {
        let s = JobSettings {
            namespace: "imageset-operator".into(),
            image: "registry.example/imageset-operator:1".into(),
            service_account: "imageset-operator".into(),
            cache: CacheVolume::Claim("imageset-operator-cache".into()),
            cache_dir: "/var/cache/imageset-operator".into(),
            backoff_per_index: 3,
            ttl_seconds: 600,
            resources: Some(json!({"requests": {"cpu": "500m", "memory": "256Mi"}})),
        };
        let set = SetRef { namespace: "team-a".into(), name: "nightly".into(), uid: "u-1".into() };
        let name = job_name("team-a-nightly-0123abcd", "sha256:00", 1);
        assert_ne!(name, job_name("team-a-nightly-0123abcd", "sha256:00", 2));
        assert!(name.len() <= 52 && name.starts_with("team-a-nightly-0123abcd-shards-"), "{name}");
        let j = job(&s, &name, &set, "sha256:00", 3, 2);
        assert_eq!(j["spec"]["completionMode"], "Indexed");
        assert_eq!((j["spec"]["completions"].as_u64(), j["spec"]["parallelism"].as_u64()), (Some(3), Some(2)));
        assert_eq!(j["spec"]["backoffLimitPerIndex"], 3);
        let pod = &j["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "imageset-operator-cache");
        let c = &pod["containers"][0];
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/var/cache/imageset-operator");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["resources"]["requests"]["cpu"], "500m");
        assert_eq!(pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"][JOB_LABEL], name.as_str());
        assert_eq!(c["args"][1], format!("--request={name}-request"));
        assert_eq!(j["metadata"]["labels"][SET_UID_LABEL], "u-1");
        // The operator's Deployment and Service (config/manager) select app.kubernetes.io/name
        // = imageset-operator: shard pods must not be among them.
        let pod_labels = &j["spec"]["template"]["metadata"]["labels"];
        assert_ne!(pod_labels["app.kubernetes.io/name"], "imageset-operator");
        assert_eq!(CacheVolume::parse("none"), Ok(CacheVolume::None));
        assert!(CacheVolume::parse("pvc:").is_err() && CacheVolume::parse("rwx").is_err());
    }
}
