//! `list helm-images`: the images of chart archives and directories, as `mirror` finds them,
//! printed chart by chart (`# <name> <version>: N images`, then one image per line). A chart
//! that cannot be read or rendered is reported on stderr; the others are still listed, and the
//! command exits 16 (oc-mirror's helm bit).

use super::CliError;
use crate::cli::ListHelmImagesArgs;

/// Runs `list helm-images`; returns the lines to print.
pub fn images(args: &ListHelmImagesArgs) -> Result<Vec<String>, CliError> {
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for path in &args.charts {
        match crate::pipeline::helm::chart_images(path, &args.image_path) {
            Ok((meta, images)) => {
                lines.push(format!("# {} {}: {} images", meta.name, meta.version, images.len()));
                lines.extend(images);
            }
            Err(e) => failed.push(format!("{}: {e}", path.display())),
        }
    }
    if failed.is_empty() {
        return Ok(lines);
    }
    for l in &lines {
        println!("{l}");
    }
    Err(CliError::Helm(format!("{} of {} charts failed: {}", failed.len(), args.charts.len(), failed.join("; "))))
}
