//! Helm charts in image sets, with real parts: the ten real charts of `../shared/data/helm`
//! (served as a repository from loopback and read as local charts) give exactly the images
//! oc-mirror v2 finds in them, the chart that cannot render is reported by name while the rest
//! go on; a digest the index does not vouch for is refused; chart repositories are reached
//! with the registries' TLS and credential rules; and end to end, a chart whose images are in
//! the test registry is mirrored to a registry, to disk and from disk with the source registry
//! and the chart server gone, its images by digest at the destination and the chart pulled back
//! with real `helm pull oci://` and `helm template`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use imageset_operator::api::mirror::Mirror;
use imageset_operator::pipeline::{self, Planned, ReleaseSources, Request};
use imageset_operator::plan::{Destination, ImageKind};
use serde_json::json;
use support::charts::{self, ChartServer, ServerOptions};
use support::cli;

/// The images `list helm-images` prints, by chart id (`<name>-<version>`), and its output.
fn listed(args: &[&str]) -> (BTreeMap<String, Vec<String>>, std::process::Output) {
    let o = cli::bin().args(["list", "helm-images"]).args(args).output().unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut at = None;
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some(head) = line.strip_prefix("# ") {
            let (id, _) = head.split_once(':').unwrap();
            let id = id.replace(' ', "-");
            out.insert(id.clone(), Vec::new());
            at = Some(id);
        } else if let Some(id) = &at {
            out.get_mut(id).unwrap().push(line.to_string());
        }
    }
    (out, o)
}

/// Every shared chart, as a `.tgz` and as a chart directory, gives oc-mirror's images (with
/// and without the extra JSONPaths); pdc-agent, which cannot render with default values, is
/// reported by name with its own message while the nine others are listed.
#[test]
fn every_shared_chart_read_locally_gives_the_images_oc_mirror_finds() {
    let ids = charts::chart_ids();
    let tgz: Vec<String> =
        ids.iter().map(|id| charts::data().join(format!("charts/{id}.tgz")).display().to_string()).collect();
    let dirs = support::temp_dir("helm-dirs-");
    let mut unpacked = Vec::new();
    for (id, file) in ids.iter().zip(&tgz) {
        let to = dirs.path().join(id);
        tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap())).unpack(&to).unwrap();
        unpacked.push(to.join(charts::name_version(id).0).display().to_string());
    }
    let extra: Vec<String> =
        charts::EXTRA_PATHS.iter().flat_map(|p| ["--image-path".to_string(), p.to_string()]).collect();
    for (sources, extra_paths) in [(&tgz, false), (&unpacked, false), (&tgz, true)] {
        let mut args: Vec<&str> = sources.iter().map(String::as_str).collect();
        if extra_paths {
            args.extend(extra.iter().map(String::as_str));
        }
        let (found, o) = listed(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(16), "pdc-agent fails, with helm's exit bit: {stderr}");
        assert!(
            stderr.contains("pdc-agent")
                && stderr.contains("Either tokenSecretName or insecureTokenValue must be provided"),
            "{stderr}"
        );
        for id in ids.iter().filter(|id| !id.starts_with("pdc-agent")) {
            assert_eq!(
                found.get(id),
                Some(&charts::expected_images(id, extra_paths)),
                "{id} (extra paths: {extra_paths}, from {})",
                if sources == &tgz { "tgz" } else { "directory" }
            );
        }
        assert_eq!(found.len(), 9, "{:?}", found.keys());
    }
}

/// Collects `mirror` (an image set's mirror block as JSON) the way `mirror` does, into a
/// registry destination, without copying: (planned, summary lines).
async fn collect(mirror: serde_json::Value, dir: &Path) -> (Planned, Vec<String>) {
    let mirror: Mirror = serde_json::from_value(mirror).unwrap();
    let dest = Destination::Registry("mirror.example.com/ns".into());
    let req = Request::collecting(dest, dir.join("working-dir"), "helm-test".into(), ReleaseSources::default(), 0);
    let mut planned = pipeline::plan(&mirror, &req).unwrap();
    let cache = Arc::new(imageset_operator::cache::Cache::open(&dir.join("cache")).unwrap().without_fsync());
    let client = Arc::new(imageset_operator::registry::Client::new(Default::default()).unwrap());
    let lines = pipeline::collect(&req, &client, &cache, &mut planned).await.unwrap();
    (planned, lines)
}

fn helm_origins(planned: &Planned) -> BTreeSet<String> {
    planned
        .plan
        .items
        .iter()
        .filter(|i| i.kind == ImageKind::Helm)
        .map(|i| i.origin.trim_start_matches("docker://").to_string())
        .collect()
}

/// A repository without `charts` (every non-library chart of its index), served from loopback:
/// each chart's images are oc-mirror's (per chart in the summary, all of them in the plan),
/// pdc-agent fails by name with its message and nothing else fails; the index and the ten
/// archives are kept in working-dir/helm as oc-mirror keeps them, and a second run fetches only
/// the index. Charts named by version, or without one (the highest), are taken alone.
#[tokio::test(flavor = "multi_thread")]
async fn every_shared_chart_from_a_repository_is_planned_as_oc_mirror_finds_it() {
    let dir = support::temp_dir("helm-repo-");
    let server = charts::serve_shared_repository(dir.path(), ServerOptions::default());
    let ids = charts::chart_ids();
    let mirror = json!({"helm": {"repositories": [{"name": "shared", "url": server.url}]}});
    let (planned, lines) = collect(mirror.clone(), dir.path()).await;

    let mut all = BTreeSet::new();
    for id in &ids {
        let (name, version) = charts::name_version(id);
        let expected = charts::expected_images(id, false);
        all.extend(expected.iter().cloned());
        if name == "pdc-agent" {
            continue;
        }
        let line = format!("mirror.helm.repositories[0] (shared): chart {name} {version}: {} images", expected.len());
        assert!(lines.contains(&line), "{line:?} not in {lines:#?}");
    }
    assert_eq!(helm_origins(&planned), all);
    let failures: Vec<&(ImageKind, &str, String)> = planned.failures.iter().collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    let (kind, reason, message) = failures[0];
    assert_eq!((*kind, *reason), (ImageKind::Helm, "ChartRenderFailed"));
    assert!(message.starts_with("mirror.helm.repositories[0] (shared): chart pdc-agent 0.2.0: "), "{message}");
    assert!(message.contains("Either tokenSecretName or insecureTokenValue must be provided"), "{message}");
    // Every chart goes to the mirror, pdc-agent too (with values of their own, users can install it).
    let mut pushed: Vec<String> = planned.charts.iter().map(|c| c.destination.clone()).collect();
    pushed.sort();
    let want: Vec<String> = ids
        .iter()
        .map(|id| {
            let (n, v) = charts::name_version(id);
            format!("docker://mirror.example.com/ns/helm-charts/{n}:{v}")
        })
        .collect();
    assert_eq!(pushed, want);

    let wd = dir.path().join("working-dir/helm");
    for id in &ids {
        let kept = std::fs::read(wd.join(format!("charts/{id}.tgz"))).unwrap();
        assert_eq!(kept, std::fs::read(charts::data().join(format!("charts/{id}.tgz"))).unwrap(), "{id}");
    }
    let kept_index = std::fs::read_to_string(wd.join(format!("indexes/{}/index.yaml", server.host))).unwrap();
    assert!(kept_index.contains(&format!("{}/podinfo-6.14.1.tgz", server.url)));
    let fetched = |s: &ChartServer| s.served().iter().filter(|r| r.status == 200).count();
    assert_eq!(fetched(&server), 11, "the index and ten archives: {:?}", server.served());
    let (again, _) = collect(mirror, dir.path()).await;
    assert_eq!(helm_origins(&again), all);
    assert_eq!(fetched(&server), 12, "kept archives with the index's digest are not fetched again");

    let named = json!({"helm": {"repositories": [{"name": "shared", "url": format!("{}/", server.url),
        "charts": [{"name": "podinfo"}, {"name": "keda", "version": "2.20.2"}]}]}});
    let (planned, lines) = collect(named, &dir.path().join("named")).await;
    let mut want: BTreeSet<String> = charts::expected_images("podinfo-6.14.1", false).into_iter().collect();
    want.extend(charts::expected_images("keda-2.20.2", false));
    assert_eq!(helm_origins(&planned), want, "{lines:#?}");
    assert_eq!(planned.charts.len(), 2);
    assert!(planned.failures.is_empty(), "{:?}", planned.failures);
}

/// An index whose digest does not match the archive it names: that chart is refused (and not
/// kept), the other charts of the repository go on.
#[tokio::test(flavor = "multi_thread")]
async fn a_chart_whose_digest_does_not_match_the_index_is_refused_alone() {
    let dir = support::temp_dir("helm-digest-");
    let server = charts::serve_shared_repository(dir.path(), ServerOptions::default());
    let index_path = server.root.join("index.yaml");
    let index = std::fs::read_to_string(&index_path).unwrap();
    let real = support::sha256(&std::fs::read(server.root.join("podinfo-6.14.1.tgz")).unwrap());
    let hex = real.trim_start_matches("sha256:");
    assert!(index.contains(hex));
    std::fs::write(&index_path, index.replace(hex, &"0".repeat(64))).unwrap();
    let mirror = json!({"helm": {"repositories": [{"name": "shared", "url": server.url,
        "charts": [{"name": "podinfo", "version": "6.14.1"}, {"name": "kube-state-metrics", "version": "8.4.0"}]}]}});
    let (planned, lines) = collect(mirror, dir.path()).await;
    assert_eq!(planned.failures.len(), 1, "{:?}", planned.failures);
    let (kind, reason, message) = &planned.failures[0];
    assert_eq!((*kind, *reason), (ImageKind::Helm, "ChartDigestMismatch"));
    assert!(message.contains("chart podinfo 6.14.1") && message.contains("digest mismatch"), "{message}");
    assert!(message.contains(hex), "the archive's real digest is named: {message}");
    assert!(lines.iter().any(|l| l.starts_with("✗ ") && l.contains("podinfo")), "{lines:#?}");
    assert!(!dir.path().join("working-dir/helm/charts/podinfo-6.14.1.tgz").exists());
    let want: BTreeSet<String> = charts::expected_images("kube-state-metrics-8.4.0", false).into_iter().collect();
    assert_eq!(helm_origins(&planned), want);
    assert_eq!(planned.charts.len(), 1);
}

/// A repository over HTTPS behind basic auth: refused without the CA (Go's words), refused
/// without credentials, read with `--registry-ca` and the authfile's credentials for its host,
/// and with `--src-tls-verify=false` instead of the CA.
#[test]
fn chart_repositories_are_reached_with_the_registry_tls_and_credential_rules() {
    let dir = support::temp_dir("helm-tls-");
    let ca = support::registry::TestCa::generate();
    let server = charts::serve_shared_repository(
        dir.path(),
        ServerOptions { tls: Some(&ca), basic: Some(("charts", "s3cret")) },
    );
    assert!(server.url.starts_with("https://"));
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let auth = dir.path().join("auth.json");
    let token = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "charts:s3cret");
    std::fs::write(&auth, json!({"auths": {server.host.clone(): {"auth": token}}}).to_string()).unwrap();
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  helm:\n    repositories:\n    - name: secure\n      url: {}\n      charts:\n      - name: podinfo\n        version: 6.14.1\n",
            server.url
        ),
    )
    .unwrap();
    let run = |case: &str, flags: &[&str]| {
        let ws = dir.path().join(case);
        let o = cli::bin()
            .args(["mirror", "-c", isc.to_str().unwrap(), "--dry-run", "docker://mirror.example.com/ns"])
            .arg(format!("--workspace=file://{}", ws.display()))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(flags)
            .output()
            .unwrap();
        let kept = ws.join("working-dir/helm/charts/podinfo-6.14.1.tgz").is_file();
        let mapping = std::fs::read_to_string(ws.join("working-dir/dry-run/mapping.txt")).unwrap_or_default();
        (cli::ok(o), kept, mapping)
    };
    let ca_flag = format!("--registry-ca={}", ca_file.display());
    let auth_flag = format!("--authfile={}", auth.display());

    let (out, kept, _) = run("no-ca", &[&auth_flag]);
    assert!(!kept);
    assert!(out.contains("✗ ") && out.contains("x509: certificate signed by unknown authority"), "{out}");
    let (out, kept, _) = run("no-credentials", &[&ca_flag]);
    assert!(!kept);
    assert!(out.contains("401") && out.contains("credentials for this host are missing or refused"), "{out}");
    for (case, flags) in
        [("ca", vec![ca_flag.as_str(), &auth_flag]), ("insecure", vec!["--src-tls-verify=false", &auth_flag])]
    {
        let (out, kept, mapping) = run(case, &flags);
        assert!(kept, "{case}: {out}");
        assert!(!out.contains("✗ "), "{case}: {out}");
        assert!(mapping.contains("docker://ghcr.io/stefanprodan/podinfo:6.14.1=docker://mirror.example.com/ns/stefanprodan/podinfo:6.14.1"), "{case}: {mapping}");
    }
    let served = server.served();
    assert!(served.iter().any(|r| r.status == 401 && !r.authenticated), "{served:?}");
    assert!(served.iter().filter(|r| r.status == 200).all(|r| r.authenticated), "{served:?}");
}

/// End to end: a chart from a loopback repository (packaged and indexed by real helm) and a
/// local chart directory, their images in the test registry. Mirror to mirror: each image at
/// the destination by digest (the hook's image and a blocked one absent), both charts pulled
/// back with real helm and rendered. Mirror to disk, then with the source registry and the chart
/// server stopped and the local chart gone, disk to mirror from a copy of the archives alone
/// into an empty registry: the same. A delete of the same charts lists their images offline.
#[test]
fn charts_are_mirrored_to_a_registry_to_disk_and_from_disk_and_pulled_back_with_helm() {
    use support::content::{Format, Pusher};
    use support::registry::{Registry, RegistryOptions};
    let dir = support::temp_dir("charts-e2e-");
    let home = dir.path().join("helm-home");
    let mut src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let far = Registry::start(RegistryOptions::default());
    let push = Pusher::new(&src);
    let app = push.image("apps/app", "1.0", Format::Oci, ("linux", "amd64"), &[(201, 4096), (202, 2048)]);
    let init = push.image("apps/init", "build", Format::Docker, ("linux", "amd64"), &[(203, 3000)]);
    let hook = push.image("apps/hook", "1", Format::Oci, ("linux", "amd64"), &[(204, 1000)]);
    let blocked = push.image("apps/blocked", "1", Format::Oci, ("linux", "amd64"), &[(205, 1000)]);
    let tool = push.image("tools/cli", "2", Format::Oci, ("linux", "amd64"), &[(206, 5000), (201, 4096)]);

    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let mut server = ChartServer::start(&repo_dir, ServerOptions::default());
    let values = format!(
        "image:\n  registry: {h}\n  repository: apps/app\n  tag: \"\"\ninit:\n  registry: {h}\n  repository: apps/init\n  digest: {}\nhookImage: {h}/apps/hook:1\nsidecar: {h}/apps/blocked:1\n",
        init.digest,
        h = src.host
    );
    let sidecar = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-sidecar\nspec:\n  containers:\n  - name: s\n    image: {{ .Values.sidecar }}\n";
    let sources = dir.path().join("sources");
    let demo = charts::write_chart(&sources, "demo", "1.2.3", &values, &[("sidecar.yaml", sidecar)]);
    charts::helm_ok(&home, &["package", demo.to_str().unwrap(), "-d", repo_dir.to_str().unwrap()]);
    charts::helm_ok(&home, &["repo", "index", repo_dir.to_str().unwrap(), "--url", &server.url]);
    let packaged = std::fs::read(repo_dir.join("demo-1.2.3.tgz")).unwrap();
    let tools_values = format!(
        "image:\n  registry: {h}\n  repository: tools/cli\n  tag: \"2\"\ninit:\n  registry: {h}\n  repository: apps/init\n  digest: {}\nhookImage: {h}/apps/hook:1\n",
        init.digest,
        h = src.host
    );
    let tools = charts::write_chart(&dir.path().join("local"), "tools", "0.1.0", &tools_values, &[]);

    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  helm:\n    repositories:\n    - name: demo\n      url: {}\n      charts:\n      - name: demo\n        version: 1.2.3\n    local:\n    - name: tools\n      path: {}\n  blockedImages:\n  - name: apps/blocked\n",
            server.url,
            tools.display()
        ),
    )
    .unwrap();
    let isc = isc.to_str().unwrap();
    let src_host = src.host.clone();
    let check = |host: &str, what: &str| {
        assert_eq!(charts::digest_at(host, "mirror/apps/app:1.0").as_ref(), Some(&app.digest), "{what}");
        let pinned = format!("mirror/apps/init:{}", init.digest.replace(':', "-"));
        assert_eq!(charts::digest_at(host, &pinned).as_ref(), Some(&init.digest), "{what}");
        assert_eq!(charts::digest_at(host, "mirror/tools/cli:2").as_ref(), Some(&tool.digest), "{what}");
        assert_eq!(charts::digest_at(host, "mirror/apps/hook:1"), None, "{what}: a hook's image is not mirrored");
        assert_eq!(charts::digest_at(host, "mirror/apps/blocked:1"), None, "{what}: a blocked image is not mirrored");
        let (bytes, rendered) = charts::pull_and_template(&home, host, "demo", "1.2.3");
        assert_eq!(bytes, packaged, "{what}: the chart comes back as it was published");
        assert!(rendered.contains(&format!("image: \"{src_host}/apps/app:1.0\"")), "{what}: {rendered}");
        let (_, rendered) = charts::pull_and_template(&home, host, "tools", "0.1.0");
        assert!(rendered.contains(&format!("image: \"{src_host}/tools/cli:2\"")), "{what}: {rendered}");
    };
    assert!(hook.digest != blocked.digest);

    // Mirror to mirror.
    let out = cli::ok(
        cli::mirror_to_mirror(isc, dir.path(), &format!("docker://{}/mirror", dst.host), &[]).output().unwrap(),
    );
    assert!(out.contains("✓ 3 / 3 helm images mirrored successfully"), "{out}");
    assert!(out.contains("✓ 2 / 2 helm charts mirrored successfully"), "{out}");
    check(&dst.host, "mirror to mirror");
    let ws = dir.path().join("ws/working-dir");
    assert_eq!(std::fs::read(ws.join("helm/charts/demo-1.2.3.tgz")).unwrap(), packaged);
    assert!(ws.join(format!("helm/indexes/{}/index.yaml", server.host)).is_file());
    let idms = std::fs::read_to_string(ws.join("cluster-resources/idms-oc-mirror.yaml")).unwrap();
    assert!(idms.contains(&format!("{}/mirror/apps", dst.host)) && !idms.contains("helm-charts"), "{idms}");

    // Mirror to disk.
    let archives = dir.path().join("archives");
    let m2d = cli::bin()
        .args(["mirror", "-c", isc, &format!("file://{}", archives.display()), "--src-tls-verify=false"])
        .arg("--cache-dir")
        .arg(dir.path().join("cache-m2d"))
        .output()
        .unwrap();
    let out = cli::ok(m2d);
    assert!(out.contains("✓ 2 helm charts archived"), "{out}");

    // The far side: no source registry, no chart server, no local chart; only the archives.
    src.stop();
    server.stop();
    std::fs::remove_dir_all(&tools).unwrap();
    let from = dir.path().join("far");
    std::fs::create_dir_all(&from).unwrap();
    for e in std::fs::read_dir(&archives).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("mirror_") {
            std::fs::copy(e.path(), from.join(e.file_name())).unwrap();
        }
    }
    let d2m = cli::bin()
        .args([
            "mirror",
            "-c",
            isc,
            "--from",
            &format!("file://{}", from.display()),
            &format!("docker://{}/mirror", far.host),
        ])
        .args(["--dest-tls-verify=false", "--cache-dir"])
        .arg(dir.path().join("cache-d2m"))
        .output()
        .unwrap();
    let out = cli::ok(d2m);
    assert!(out.contains("✓ 2 / 2 helm charts mirrored successfully"), "{out}");
    check(&far.host, "disk to mirror");
    assert_eq!(std::fs::read(from.join("working-dir/helm/charts/demo-1.2.3.tgz")).unwrap(), packaged);
    // An image set naming the repository without charts, or the chart without a version,
    // takes what the archives hold of it.
    for (case, entry) in [("no-charts", ""), ("no-version", "\n      charts:\n      - name: demo")] {
        let text = std::fs::read_to_string(isc).unwrap();
        let start = text.find("\n      charts:").unwrap();
        let end = text.find("    local:").unwrap();
        let changed = dir.path().join(format!("isc-{case}.yaml"));
        std::fs::write(&changed, format!("{}{entry}\n{}", &text[..start], &text[end..])).unwrap();
        let o = cli::bin()
            .args(["mirror", "-c", changed.to_str().unwrap(), "--from", &format!("file://{}", from.display())])
            .arg(format!("docker://{}/mirror", far.host))
            .args(["--dest-tls-verify=false", "--cache-dir"])
            .arg(dir.path().join("cache-d2m"))
            .output()
            .unwrap();
        let out = cli::ok(o);
        assert!(out.contains("✓ 3 / 3 helm images mirrored successfully (3 already present)"), "{case}: {out}");
        assert!(out.contains("✓ 2 / 2 helm charts mirrored successfully (2 already present)"), "{case}: {out}");
    }

    // A delete of the same charts, planned from what the mirror run kept (both servers are gone).
    let disc = dir.path().join("disc.yaml");
    let isc_text = std::fs::read_to_string(isc).unwrap();
    let block = isc_text.split_once("mirror:\n").unwrap().1.split("  blockedImages:").next().unwrap();
    std::fs::write(
        &disc,
        format!("apiVersion: mirror.openshift.io/v2alpha1\nkind: DeleteImageSetConfiguration\ndelete:\n{block}"),
    )
    .unwrap();
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::write(tools.join("Chart.yaml"), "apiVersion: v2\nname: tools\nversion: 0.1.0\n").unwrap();
    let o = cli::bin()
        .args(["delete", "--generate", "-c", disc.to_str().unwrap(), &format!("docker://{}/mirror", dst.host)])
        .arg(format!("--workspace=file://{}", dir.path().join("ws").display()))
        .arg("--cache-dir")
        .arg(dir.path().join("cache-delete"))
        .output()
        .unwrap();
    cli::ok(o);
    let list = std::fs::read_to_string(ws.join("delete/delete-images.yaml")).unwrap();
    assert!(list.contains(&format!("{}/mirror/apps/app:1.0", dst.host)), "{list}");
    assert!(list.contains("helmImage"), "{list}");
}

/// A chart that cannot render (pdc-agent, as a local chart) fails alone: mirror to mirror
/// copies the other chart's image and pushes both charts (pdc-agent can still be installed
/// with values of one's own), names pdc-agent with its message in the output and the error
/// log, and exits with helm's bit 16; mirror to disk still writes its archive and exits 16.
#[test]
fn a_chart_that_cannot_render_fails_alone_with_helms_exit_bit() {
    use support::content::{Format, Pusher};
    use support::registry::{Registry, RegistryOptions};
    let dir = support::temp_dir("charts-failing-");
    let home = dir.path().join("helm-home");
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let push = Pusher::new(&src);
    let tool = push.image("tools/cli", "2", Format::Oci, ("linux", "amd64"), &[(211, 3000)]);
    let init = push.image("apps/init", "build", Format::Docker, ("linux", "amd64"), &[(212, 1000)]);
    let values = format!(
        "image:\n  registry: {h}\n  repository: tools/cli\n  tag: \"2\"\ninit:\n  registry: {h}\n  repository: apps/init\n  digest: {}\nhookImage: {h}/apps/hook:1\n",
        init.digest,
        h = src.host
    );
    let tools = charts::write_chart(&dir.path().join("local"), "tools", "0.1.0", &values, &[]);
    let pdc = charts::data().join("charts/pdc-agent-0.2.0.tgz");
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  helm:\n    local:\n    - name: pdc-agent\n      path: {}\n    - name: tools\n      path: {}\n",
            pdc.display(),
            tools.display()
        ),
    )
    .unwrap();
    let isc = isc.to_str().unwrap();
    let o = cli::mirror_to_mirror(isc, dir.path(), &format!("docker://{}/mirror", dst.host), &[]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(16), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let named = "mirror.helm.local[0] (pdc-agent): chart pdc-agent 0.2.0: ";
    assert!(
        out.contains(&format!("✗ {named}")) && out.contains("Either tokenSecretName or insecureTokenValue"),
        "{out}"
    );
    assert!(out.contains("✓ 2 / 2 helm images mirrored successfully"), "{out}");
    assert!(out.contains("✓ 2 / 2 helm charts mirrored successfully"), "{out}");
    assert_eq!(charts::digest_at(&dst.host, "mirror/tools/cli:2"), Some(tool.digest));
    let (bytes, _) = charts::pull_and_template(&home, &dst.host, "tools", "0.1.0");
    assert!(!bytes.is_empty());
    let out_dir = home.join(format!("pulled-{}-pdc-agent", dst.host));
    std::fs::create_dir_all(&out_dir).unwrap();
    let reference = format!("oci://{}/mirror/helm-charts/pdc-agent", dst.host);
    charts::helm_ok(
        &home,
        &["pull", &reference, "--version", "0.2.0", "--plain-http", "-d", out_dir.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(out_dir.join("pdc-agent-0.2.0.tgz")).unwrap(), std::fs::read(&pdc).unwrap());
    let logs: Vec<_> =
        std::fs::read_dir(dir.path().join("ws/working-dir/logs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains(&format!("error collecting {named}")), "{log}");

    let archives = dir.path().join("archives");
    let o = cli::bin()
        .args(["mirror", "-c", isc, &format!("file://{}", archives.display()), "--src-tls-verify=false"])
        .arg("--cache-dir")
        .arg(dir.path().join("cache-m2d"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(16), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("✓ 2 helm charts archived") && !out.contains("no archive written"), "{out}");
    assert!(archives.join("mirror_000001.tar").is_file());
}
