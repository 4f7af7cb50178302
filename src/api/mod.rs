//! Our custom resources, their schema and validation, and the loading of oc-mirror's files.
//! No I/O here but the pure parsing of bytes handed in.

pub mod disc;
pub mod duration;
pub mod isc;
pub mod load;
pub mod mirror;
pub mod status;
pub mod validate;

pub use disc::{DeleteImageSetConfiguration, DeleteImageSetConfigurationSpec};
pub use duration::{DurationError, MAX_INTERVAL, parse_duration};
pub use isc::{ImageSetConfiguration, ImageSetConfigurationSpec};

/// API group of both kinds.
pub const GROUP: &str = "mirror.openshift.io";
/// API version of both kinds.
pub const VERSION: &str = "v2alpha1";
/// `apiVersion` string.
pub const API_VERSION: &str = "mirror.openshift.io/v2alpha1";

/// Condition types, reasons, and the names the operator writes under.
pub mod names {
    /// Everything the spec asks for is mirrored and applied.
    pub const READY: &str = "Ready";
    /// A run is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// The last run failed or was partial.
    pub const DEGRADED: &str = "Degraded";
    /// Field manager for server-side apply.
    pub const FIELD_MANAGER: &str = "imageset-operator";
    /// Finalizer that removes owned cluster objects.
    pub const FINALIZER: &str = "mirror.openshift.io/imageset-operator";
    /// Label naming the image set that produced an object (`<namespace>.<name>`).
    pub const OWNER_LABEL: &str = "mirror.openshift.io/owned-by";
}

/// YAML as oc-mirror's Go writer lays it out: every scalar on its key's line, however long
/// (serde-saphyr would fold strings over 80 characters into `>-` blocks, which are harder to
/// review and to grep).
pub fn to_yaml_lines<T: serde::Serialize>(value: &T) -> Result<String, serde_saphyr::ser::Error> {
    let mut o = serde_saphyr::SerializerOptions::default();
    o.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, o)
}

/// Both CRDs as one multi-document YAML stream, as committed in `crds/`.
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [ImageSetConfiguration::crd(), DeleteImageSetConfiguration::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd).expect("CRDs serialize to YAML"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed CRDs must match the code; regenerate with the command printed on failure.
    #[test]
    fn committed_crds_are_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/crds.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crds_yaml(),
            "crds/crds.yaml is out of date; regenerate it with:\n    cargo run -- crd > crds/crds.yaml"
        );
    }

    /// Admission and the operator agree on the resyncInterval bound, and the CEL rule's input
    /// is short enough for the apiserver's cost estimate.
    #[test]
    fn resync_interval_admission_matches_parse_duration() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(ImageSetConfiguration::crd()).unwrap();
        let prop = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["resyncInterval"];
        assert_eq!(prop["maxLength"], 32, "{prop}");
        let rule = &prop["x-kubernetes-validations"][0];
        let bound = format!("duration('{}')", duration::MAX_INTERVAL_GO);
        assert!(rule["rule"].as_str().unwrap().contains(&bound), "{rule}");
        // The rule applies to what the schema's pattern admits: the same pattern.
        let pattern = prop["pattern"].as_str().unwrap().replace(r"\.", "[.]");
        assert!(rule["rule"].as_str().unwrap().contains(&format!("self.matches('{pattern}')")), "{rule}");
        let message = rule["message"].as_str().unwrap();
        assert!(message.contains("spec.resyncInterval") && message.contains(duration::MAX_INTERVAL_GO), "{rule}");
        assert_eq!(parse_duration(duration::MAX_INTERVAL_GO), Ok(MAX_INTERVAL));
    }
}
