//! The chart renderer over the real charts of `../shared/data/helm`: the images found equal
//! what oc-mirror v2's own code finds (`expected/*.json`), with and without extra JSONPaths,
//! from packaged charts and from the same charts unpacked into directories; the chart that
//! cannot render fails with its own message; and the rendered documents equal what real
//! `helm template` rendered (`rendered/*.yaml.gz`), rendered here with the same release
//! options.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use imageset_operator::helm::render::{self, Chart, Options};
use support::charts;

fn tgz(id: &str) -> Vec<u8> {
    std::fs::read(charts::data().join("charts").join(format!("{id}.tgz"))).unwrap()
}

fn extra() -> Vec<String> {
    charts::EXTRA_PATHS.iter().map(|p| p.to_string()).collect()
}

fn renders(id: &str) -> bool {
    charts::expected(id)["ocmirror_v2_emulation"]["renders"].as_bool().unwrap()
}

/// The chart's own failure, as `expected/<id>.json` records it from oc-mirror's code path.
fn expected_error(id: &str) -> String {
    charts::expected(id)["ocmirror_v2_emulation"]["error"].as_str().unwrap().to_string()
}

fn check(id: &str, c: &Chart, how: &str) {
    let (name, version) = charts::name_version(id);
    assert_eq!((c.name.as_str(), c.version.as_str()), (name.as_str(), version.as_str()), "{id} ({how})");
    if renders(id) {
        let found = render::images(c, &[]).unwrap_or_else(|e| panic!("{id} ({how}): {e}"));
        assert_eq!(found, charts::expected_images(id, false), "{id} ({how}): default paths");
        let found = render::images(c, &extra()).unwrap_or_else(|e| panic!("{id} ({how}): {e}"));
        assert_eq!(found, charts::expected_images(id, true), "{id} ({how}): with extra paths");
    } else {
        let err = render::images(c, &[]).unwrap_err().to_string();
        // oc-mirror: "failed to get template <chart>: error rendering chart <chart>: <Helm's message>".
        let helm = expected_error(id);
        let own = helm.split_once("error rendering chart ").map(|(_, r)| format!("error rendering chart {r}")).unwrap();
        assert_eq!(err, own, "{id} ({how})");
        assert!(err.contains(&format!("({name}/templates/")), "{id}: the error names the file: {err}");
    }
}

#[test]
fn images_equal_what_oc_mirror_finds_in_every_packaged_chart() {
    let ids = charts::chart_ids();
    let mut failing = 0;
    for id in &ids {
        let c = render::load_archive(&tgz(id)).unwrap_or_else(|e| panic!("{id}: {e}"));
        check(id, &c, "archive");
        failing += usize::from(!renders(id));
    }
    assert_eq!(failing, 1, "exactly one chart of the data cannot render with its defaults");
}

/// Unpacks a chart archive the way `tar xzf` does.
fn unpack(bytes: &[u8], into: &Path) {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    a.unpack(into).unwrap();
}

#[test]
fn images_are_the_same_from_unpacked_chart_directories() {
    for id in charts::chart_ids() {
        let dir = support::temp_dir("helm-render");
        unpack(&tgz(&id), dir.path());
        let (name, _) = charts::name_version(&id);
        let c = render::load_dir(&dir.path().join(&name)).unwrap_or_else(|e| panic!("{id}: {e}"));
        check(&id, &c, "directory");
    }
}

#[test]
fn a_chart_with_subcharts_packed_as_archives_renders_the_same() {
    // kube-prometheus-stack carries its dependencies unpacked; pack each one as charts/<n>.tgz
    // (what `helm dependency build` leaves) and load the directory again.
    let id = "kube-prometheus-stack-88.5.3";
    let dir = support::temp_dir("helm-render-tgz");
    unpack(&tgz(id), dir.path());
    let root = dir.path().join("kube-prometheus-stack");
    let subs = root.join("charts");
    let mut packed = 0;
    for e in std::fs::read_dir(&subs).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let out = std::fs::File::create(subs.join(format!("{name}.tgz"))).unwrap();
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(out, flate2::Compression::fast()));
        b.append_dir_all(&name, &p).unwrap();
        b.into_inner().unwrap().finish().unwrap();
        std::fs::remove_dir_all(&p).unwrap();
        packed += 1;
    }
    assert_eq!(packed, 5);
    let c = render::load_dir(&root).unwrap();
    check(id, &c, "subcharts as archives");
}

/// The documents of `helm template` output, keyed by source file, kind and name (helm
/// template orders documents by kind, not as the file has them).
fn docs_of(text: &str) -> BTreeMap<(String, String, String, usize), serde_json::Value> {
    let mut out = BTreeMap::new();
    for doc in text.split("\n---\n") {
        let Some(source) = doc.lines().find_map(|l| l.strip_prefix("# Source: ")) else { continue };
        let v: serde_json::Value = serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{source}: {e}"));
        if v.is_null() {
            continue;
        }
        let kind = v["kind"].as_str().unwrap_or("").to_string();
        let mut name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.contains("-test-") {
            name = "<random>".into();
        }
        let mut n = 0;
        while out.contains_key(&(source.to_string(), kind.clone(), name.clone(), n)) {
            n += 1;
        }
        out.insert((source.to_string(), kind, name, n), v);
    }
    out
}

/// Values that differ on every render (random names and secrets) are blanked in both.
fn normalise(v: &mut serde_json::Value, path: &str) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                normalise(x, &format!("{path}.{k}"));
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| normalise(x, path)),
        serde_json::Value::String(s) if path.ends_with("metadata.name") && s.contains("-test-") => {
            *s = "<random>".into()
        }
        serde_json::Value::String(s) if path.contains(".data.") && path.contains("password") => *s = "<random>".into(),
        serde_json::Value::Number(n) => {
            // Compare numbers as floats: YAML integers and floats read alike.
            *v = serde_json::json!(n.as_f64());
        }
        _ => {}
    }
}

/// Records where two documents differ.
fn diff(a: &serde_json::Value, b: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(p, q, &format!("{at}.{k}"), out),
                    (p, q) => out.push(format!("{at}.{k}: ours {p:?}, helm {q:?}")),
                }
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => {
            let cut = |v: &serde_json::Value| v.to_string().chars().take(300).collect::<String>();
            out.push(format!("{at}: ours {}, helm {}", cut(a), cut(b)));
        }
        _ => {}
    }
}

fn helm_template_output(id: &str) -> String {
    let gz = std::fs::read(charts::data().join("rendered").join(format!("{id}.yaml.gz"))).unwrap();
    let mut s = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut s).unwrap();
    s
}

/// `helm template x ./chart.tgz --include-crds` as the shared data ran it (Helm v4.3.2: release
/// `x` in `default`, install, Kubernetes v1.37.0).
fn helm_template_options() -> Options {
    Options {
        release_name: "x".into(),
        namespace: "default".into(),
        is_install: true,
        kube_version: "v1.37.0".into(),
        ..Options::default()
    }
}

#[test]
fn rendered_documents_equal_helm_templates_output() {
    let mut compared = 0;
    let mut differences = Vec::new();
    let sep = regex::Regex::new(r"(?:^|\s*\n)---\s*").unwrap();
    for id in charts::chart_ids().into_iter().filter(|id| renders(id)) {
        let c = render::load_archive(&tgz(&id)).unwrap();
        let ours = render::render(&c, &helm_template_options()).unwrap_or_else(|e| panic!("{id}: {e}"));
        // Printed as helm template prints manifests (its document split, NOTES left out).
        let mut text = String::new();
        for (name, out) in &ours {
            if name.ends_with("NOTES.txt") {
                continue;
            }
            for doc in sep.split(out.trim()).map(str::trim).filter(|d| !d.is_empty()) {
                text.push_str(&format!("\n---\n# Source: {name}\n{doc}"));
            }
        }
        let mut mine = docs_of(&text);
        let mut theirs = docs_of(&helm_template_output(&id));
        // helm template also prints the crds/ folders; compare rendered templates only.
        theirs.retain(|(src, ..), _| src.contains("/templates/"));
        mine.values_mut().for_each(|v| normalise(v, ""));
        theirs.values_mut().for_each(|v| normalise(v, ""));
        let keys_mine: BTreeSet<_> = mine.keys().cloned().collect();
        let keys_theirs: BTreeSet<_> = theirs.keys().cloned().collect();
        assert_eq!(keys_mine, keys_theirs, "{id}: documents");
        for (k, v) in &theirs {
            diff(&mine[k], v, &format!("{id}: {k:?}"), &mut differences);
            compared += 1;
        }
    }
    // Where the two renders may differ, and why:
    let expected = [
        // A checksum over a Secret holding a random password.
        "kube-prometheus-stack-88.5.3: (\"kube-prometheus-stack/charts/grafana/templates/deployment.yaml\", \"Deployment\", \"x-grafana\", 0).spec.template.metadata.annotations.checksum/secret",
        // Certificates from genCA/genSignedCert are random (placeholders here).
        "nginx-22.1.1: (\"nginx/templates/tls-secret.yaml\", \"Secret\", \"x-nginx-tls\", 0).data.ca.crt",
        "nginx-22.1.1: (\"nginx/templates/tls-secret.yaml\", \"Secret\", \"x-nginx-tls\", 0).data.tls.crt",
        "nginx-22.1.1: (\"nginx/templates/tls-secret.yaml\", \"Secret\", \"x-nginx-tls\", 0).data.tls.key",
        // `limits:` is null in podinfo's values.yaml: Helm v4 (which rendered the reference)
        // drops nulls from chart defaults; Helm v3.21, the library oc-mirror calls and this
        // engine follows, keeps them, so `toYaml` prints `limits: null`.
        "podinfo-6.14.1: (\"podinfo/templates/deployment.yaml\", \"Deployment\", \"x-podinfo\", 0).spec.template.spec.containers[0].resources.limits",
    ];
    differences.retain(|d| !expected.iter().any(|e| d.starts_with(&format!("{e}:"))));
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n"));
    assert!(compared > 200, "only {compared} documents compared");
}

#[test]
fn every_chart_renders_quickly() {
    // Load + render + scan per chart, printed for the record (`cargo test --release --test
    // helm_render -- --nocapture every_chart` gives the release figures).
    let mut total = std::time::Duration::ZERO;
    for id in charts::chart_ids() {
        let bytes = tgz(&id);
        let start = Instant::now();
        let c = render::load_archive(&bytes).unwrap();
        let result = render::images(&c, &extra());
        let took = start.elapsed();
        total += took;
        assert_eq!(result.is_ok(), renders(&id), "{id}");
        eprintln!("{id:<32} {:>8.1} ms  {:>7} bytes", took.as_secs_f64() * 1000.0, bytes.len());
        // Generous for an unoptimised test build on a shared machine.
        assert!(took.as_secs() < 30, "{id} took {took:?}");
    }
    eprintln!("{:<32} {:>8.1} ms", "all ten", total.as_secs_f64() * 1000.0);
}
