//! `delete`: phase 1 (`--generate`) plans what to delete and writes oc-mirror's
//! `working-dir/delete/delete-images.yaml`; phase 2 executes a reviewed plan.

use serde::Serialize;

use super::{CliError, io_err, working_dir, write_atomic};
use crate::api::load;
use crate::cli::{DeleteArgs, Env};
use crate::plan::{self, Destination, ImageKind};

/// oc-mirror's `DeleteImageList`.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteImageList {
    /// `mirror.openshift.io/v2alpha1`.
    pub api_version: String,
    /// `DeleteImageList`.
    pub kind: String,
    /// Images to delete, sorted by destination.
    pub items: Vec<DeleteItem>,
}

/// One image to delete.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteItem {
    /// Origin reference.
    pub image_name: String,
    /// Destination reference to delete.
    pub image_reference: String,
    /// oc-mirror's image type.
    #[serde(rename = "type")]
    pub image_type: String,
}

fn type_name(k: ImageKind) -> &'static str {
    match k {
        ImageKind::ReleaseContent | ImageKind::KubeVirt => "ocpReleaseContent",
        ImageKind::Release => "ocpRelease",
        ImageKind::Graph => "cincinnatiGraph",
        ImageKind::OperatorRelatedImage => "operatorRelatedImage",
        ImageKind::Additional => "generic",
        ImageKind::Helm => "helmImage",
        ImageKind::OperatorBundle => "operatorBundle",
        ImageKind::OperatorCatalog => "operatorCatalog",
    }
}

/// Runs `delete`; returns the summary lines.
pub fn run(args: &DeleteArgs, _env: &Env) -> Result<Vec<String>, CliError> {
    let c = &args.common;
    let usage = |m: &str| Err(CliError::Usage(m.to_string()));
    let Some(dest_arg) = args.destination.as_deref() else {
        return usage("a destination is required: docker://REGISTRY[/PREFIX]");
    };
    let destination = Destination::parse(dest_arg)?;
    if destination == Destination::Disk {
        return usage("delete needs a docker:// destination");
    }
    if !args.generate {
        if args.delete_yaml_file.is_none() {
            return usage("use --generate to write a delete plan, or --delete-yaml-file to execute one");
        }
        return Err(CliError::Unsupported("deleting from a registry is not available in this build yet".into()));
    }
    let Some(config) = c.config.clone() else {
        return usage("use the --config flag it is mandatory");
    };
    let Some(ws) = c.workspace.as_deref() else {
        return usage("--generate needs --workspace file://DIR");
    };
    if !ws.starts_with("file://") {
        return usage("when using --workspace, the file:// prefix is mandatory");
    }
    let text = std::fs::read_to_string(&config).map_err(io_err(&config))?;
    let disc = load::delete_set(&text).map_err(|source| CliError::Config { path: config.clone(), source })?;
    let plan = plan::plan_delete(&disc.delete, &destination, c.max_nested_paths)?;
    let mut items: Vec<DeleteItem> = plan
        .items
        .iter()
        .map(|i| DeleteItem {
            image_name: i.origin.trim_start_matches("docker://").to_string(),
            image_reference: i.destination.clone(),
            image_type: type_name(i.kind).to_string(),
        })
        .collect();
    items.sort_by(|a, b| a.image_reference.cmp(&b.image_reference));
    items.dedup_by(|a, b| a.image_reference == b.image_reference);
    let list = DeleteImageList { api_version: crate::api::API_VERSION.into(), kind: "DeleteImageList".into(), items };
    let suffix = args.delete_id.as_deref().map(|id| format!("-{id}")).unwrap_or_default();
    let dir = working_dir(ws).join("delete");
    let out = dir.join(format!("delete-images{suffix}.yaml"));
    let yaml = serde_saphyr::to_string(&list).map_err(|e| CliError::Unsupported(e.to_string()))?;
    write_atomic(&out, yaml.as_bytes())?;
    write_atomic(&dir.join(format!("delete-imageset-config{suffix}.yaml")), text.as_bytes())?;
    let mut lines = Vec::new();
    if disc.delete.platform.is_some() || !disc.delete.operators.is_empty() {
        lines.push("warning: delete.platform and delete.operators are not planned in this build".to_string());
    }
    lines.push(format!("delete plan: {} images; written to {}", list.items.len(), out.display()));
    lines.push("review it, then run: imageset-operator delete --delete-yaml-file <file> docker://<registry>".into());
    Ok(lines)
}
