//! Plan and render over oc-mirror's own image sets: every additional image of every v2 config
//! in the shared data, mirrored (on paper) into one registry, is covered by exactly the mirror
//! set oc-mirror's rules put it in, and the output does not depend on input order.

mod support;

use imageset_operator::api::load;
use imageset_operator::copy::{ItemResult, Outcome};
use imageset_operator::image::ImageRef;
use imageset_operator::plan::{Destination, plan_additional};
use imageset_operator::render::{self, Mirrored, Naming};
use serde_json::Value;

fn configs() -> Vec<(String, load::ImageSetFile)> {
    let mut out = Vec::new();
    let mut stack = vec![support::shared_data().join("oc-mirror-configs/v2")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(text) = std::fs::read_to_string(&p)
                && load::kind_of(&text).ok() == Some(load::Kind::ImageSet)
                && let Ok(isc) = load::image_set(&text)
            {
                out.push((p.display().to_string(), isc));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every copied item, reported as copied with a digest derived from its name.
fn report(items: &[imageset_operator::plan::CopyItem]) -> Vec<ItemResult> {
    items
        .iter()
        .map(|i| ItemResult {
            item: i.clone(),
            outcome: Outcome::Copied,
            digest: Some(imageset_operator::image::manifest::sha256_digest(i.origin.as_bytes())),
            media_type: None,
            contents: Vec::new(),
        })
        .collect()
}

fn covers(entries: &Value, origin: &ImageRef, destination: &ImageRef) -> bool {
    entries.as_array().into_iter().flatten().any(|e| {
        let source = e["source"].as_str().unwrap();
        let Some(rest) = origin.name().strip_prefix(source).map(str::to_string) else { return false };
        (rest.is_empty() || rest.starts_with('/'))
            && e["mirrors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| format!("{}{rest}", m.as_str().unwrap()) == destination.name())
    })
}

#[test]
fn every_additional_image_lands_in_the_right_mirror_set() {
    let dest = Destination::Registry("mirror.example.com:5000/ocp".into());
    let mut checked = 0;
    for (path, isc) in configs() {
        if isc.mirror.additional_images.is_empty() {
            continue;
        }
        let plan = plan_additional(&isc.mirror, &dest, 0, false).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut results = report(&plan.items);
        let mirrored = Mirrored::from_report(&results);
        let objects = render::mirror_sets(&mirrored, &Naming::default());
        let set = |kind: &str, field: &str| {
            objects.iter().find(|o| o["kind"] == kind).map(|o| o["spec"][field].clone()).unwrap_or(Value::Null)
        };
        let (idms, itms) =
            (set("ImageDigestMirrorSet", "imageDigestMirrors"), set("ImageTagMirrorSet", "imageTagMirrors"));
        for m in &mirrored {
            assert_eq!(
                covers(&idms, &m.origin, &m.destination),
                m.origin.digest.is_some(),
                "{path}: {} in IDMS",
                m.origin
            );
            assert_eq!(
                covers(&itms, &m.origin, &m.destination),
                m.origin.tag.is_some(),
                "{path}: {} in ITMS",
                m.origin
            );
            checked += 1;
        }
        let yaml = render::to_yaml(&objects);
        results.reverse();
        assert_eq!(
            yaml,
            render::to_yaml(&render::mirror_sets(&Mirrored::from_report(&results), &Naming::default())),
            "{path}"
        );
        // A failed image never reaches the cluster's configuration.
        results[0].outcome = Outcome::Failed { reason: "Test", message: "refused".into() };
        let failed = ImageRef::parse(&results[0].item.origin).unwrap();
        assert!(!Mirrored::from_report(&results).iter().any(|m| m.origin == failed), "{path}");
    }
    assert!(checked >= 10, "only {checked} images in the shared configs");
}
