//! The image `scripts/build-image` assembles without a container engine or a base image: an
//! OCI layout that is reproducible and labelled, that a registry takes and gives back, and
//! whose root filesystem, unpacked from what the registry gave back, runs the operator under
//! `chroot` as the image's user with the image's environment only: `version`, `crd`, and
//! `run` against the test world's kube-apiserver mirroring an image between two registries.
//! The image is built from a release build in the target directory of this test (a cold one
//! takes several minutes). `chroot` needs root: the test fails, saying so, without it.
//! Prints the image's size and the time from process start to `/readyz` answering 200.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use imageset_operator::api::ImageSetConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use support::cluster;
use support::content::{Format, Pusher};
use support::operator::{OPERATOR, clear_left_behind, finished, service_account_kubeconfig_in};
use support::registry::{Registry, RegistryOptions};

/// What the image's source label is asked to say.
const SOURCE: &str = "https://example.org/imageset-operator";
/// The operator's namespace in the `run` test.
const NS: &str = "image-ops";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory this test was built in (its binary is in `<target>/<profile>/`): the
/// release build goes beside it, so a warm machine rebuilds nothing.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_imageset-operator"));
    bin.parent().and_then(Path::parent).expect("the test binary's target directory").to_path_buf()
}

/// A program from PATH or the system directories root's tools live in.
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found in PATH or the system directories"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn git(args: &[&str]) -> String {
    String::from_utf8(run(Command::new("git").current_dir(repo()).args(args)).stdout).unwrap().trim().to_string()
}

/// What `scripts/build-image` printed.
struct Built {
    digest: String,
    layout: PathBuf,
    reference: String,
    compressed_bytes: u64,
    unpacked_bytes: u64,
}

fn build_image(layout: &Path) -> Built {
    let started = Instant::now();
    let out = run(Command::new(repo().join("scripts/build-image"))
        .arg(layout)
        .env("CARGO", env!("CARGO"))
        .env("CARGO_TARGET_DIR", target_dir())
        .env("IMAGE_SOURCE", SOURCE)
        .env_remove("SOURCE_DATE_EPOCH"));
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let field = |k: &str| fields.get(k).unwrap_or_else(|| panic!("build-image printed no {k}=: {text}")).to_string();
    println!("scripts/build-image: {:.1}s", started.elapsed().as_secs_f64());
    Built {
        digest: field("digest"),
        layout: PathBuf::from(field("layout")),
        reference: field("reference"),
        compressed_bytes: field("compressed_bytes").parse().unwrap(),
        unpacked_bytes: field("unpacked_bytes").parse().unwrap(),
    }
}

/// The image, built once for the tests of this file.
fn image() -> &'static Built {
    static IMAGE: OnceLock<(tempfile::TempDir, Built)> = OnceLock::new();
    &IMAGE
        .get_or_init(|| {
            let dir = support::temp_dir("image-");
            let built = build_image(&dir.path().join("layout"));
            (dir, built)
        })
        .1
}

fn inspect(args: &[&str]) -> Value {
    serde_json::from_slice(&support::skopeo(args)).expect("skopeo's JSON")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The blobs of an OCI layout, by digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let bytes = read(&layout.join("blobs/sha256").join(digest.strip_prefix("sha256:").expect("a sha256 digest")));
    assert_eq!(support::sha256(&bytes), digest, "blob {digest} of {}", layout.display());
    bytes
}

#[test]
fn the_layout_is_reproducible_labelled_and_configured_as_the_dockerfile_image() {
    let image = image();
    let dir = support::temp_dir("image-again-");
    let again = build_image(&dir.path().join("layout"));
    assert_eq!(again.digest, image.digest, "a second build of the same commit differs");
    for d in ["index.json", "oci-layout"] {
        assert_eq!(read(&again.layout.join(d)), read(&image.layout.join(d)), "{d}");
    }

    let inspected = inspect(&["inspect", &image.reference]);
    assert_eq!(inspected["Digest"], image.digest);
    let created = jiff::Timestamp::from_second(git(&["log", "-1", "--format=%ct"]).parse().unwrap())
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let label = |k: &str| inspected["Labels"][format!("org.opencontainers.image.{k}")].as_str().map(str::to_string);
    let want = [
        ("title", env!("CARGO_PKG_NAME").to_string()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("revision", git(&["rev-parse", "HEAD"])),
        ("source", SOURCE.to_string()),
        ("licenses", env!("CARGO_PKG_LICENSE").to_string()),
        ("created", created),
    ];
    for (k, v) in want {
        assert_eq!(label(k).as_deref(), Some(v.as_str()), "label {k}: {inspected}");
    }
    assert!(!env!("CARGO_PKG_LICENSE").is_empty(), "Cargo.toml declares no license");

    // As the Dockerfile's image: user 65532, the binary as entrypoint, `run` by default.
    let config = inspect(&["inspect", "--config", &image.reference]);
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "{config}");
    assert_eq!(c["Entrypoint"], json!(["/usr/local/bin/imageset-operator"]), "{config}");
    assert_eq!(c["Cmd"], json!(["run"]), "{config}");
    assert!(
        c["Env"].as_array().unwrap().iter().any(|e| e == "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "{config}"
    );
    assert_eq!(config["architecture"], inspected["Architecture"]);

    // Every blob the manifest names is in the layout with its digest, the layers are gzipped
    // tars whose digests are the config's diff_ids, and the printed size is what the layout holds.
    let index: Value = serde_json::from_slice(&read(&image.layout.join("index.json"))).unwrap();
    let manifest: Value =
        serde_json::from_slice(&blob(&image.layout, index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(index["manifests"][0]["digest"], image.digest);
    let layers = manifest["layers"].as_array().unwrap();
    let mut unpacked = 0;
    for (i, l) in layers.iter().enumerate() {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let gz = blob(&image.layout, l["digest"].as_str().unwrap());
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut tar).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][i], support::sha256(&tar), "layer {i}");
        unpacked += tar.len() as u64;
    }
    assert_eq!(unpacked, image.unpacked_bytes);
    let on_disk: u64 = std::fs::read_dir(image.layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(on_disk, image.compressed_bytes, "the printed size is not the layout's blobs");
    println!(
        "image {}: {:.1} MB compressed, {:.1} MB unpacked, {} layers",
        image.digest,
        image.compressed_bytes as f64 / 1e6,
        image.unpacked_bytes as f64 / 1e6,
        layers.len()
    );
}

/// The root filesystem of what the registry gives back: pulled to a layout of its own, each
/// layer checked against its digest and unpacked in order. Returns it and the image config.
fn pull_and_unpack(reg: &Registry, image: &Built, dir: &Path) -> (PathBuf, Value) {
    let version = env!("CARGO_PKG_VERSION");
    let remote = format!("docker://{}/imageset-operator:{version}", reg.host);
    support::skopeo(&["copy", "--dest-tls-verify=false", &image.reference, &remote]);
    let raw = support::skopeo(&["inspect", "--tls-verify=false", "--raw", &remote]);
    assert_eq!(support::sha256(&raw), image.digest, "the registry holds another manifest");
    let pulled = dir.join("pulled");
    let pulled_ref = format!("oci:{}:{version}", pulled.display());
    support::skopeo(&["copy", "--src-tls-verify=false", &remote, &pulled_ref]);
    let index: Value = serde_json::from_slice(&read(&pulled.join("index.json"))).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == version)
        .expect("the pulled layout names the version");
    assert_eq!(entry["digest"], image.digest);
    unpack(&pulled, &image.digest, &dir.join("rootfs"))
}

/// Unpacks the layers of manifest `digest` of an OCI layout in order, each checked against its
/// digest, into a new directory `rootfs`; returns it and the image config.
fn unpack(layout: &Path, digest: &str, rootfs: &Path) -> (PathBuf, Value) {
    let manifest: Value = serde_json::from_slice(&blob(layout, digest)).unwrap();
    let config: Value = serde_json::from_slice(&blob(layout, manifest["config"]["digest"].as_str().unwrap())).unwrap();
    std::fs::create_dir(rootfs).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        blob(layout, digest);
        let path = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
        run(Command::new("tar").arg("--numeric-owner").arg("-xpzf").arg(&path).arg("-C").arg(rootfs));
    }
    (rootfs.to_path_buf(), config)
}

/// `chroot` into `rootfs` as the config's user, with the config's environment (plus `env`)
/// only, running its entrypoint with `args`: the command line, for `Command` or a guard.
fn in_image(rootfs: &Path, config: &Value, env: &[String], args: &[&str]) -> (PathBuf, Vec<String>) {
    let c = &config["config"];
    let mut line = vec!["-i".to_string()];
    line.extend(c["Env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()));
    line.extend(env.iter().cloned());
    line.push(program("chroot").display().to_string());
    line.push(format!("--userspec={}", c["User"].as_str().unwrap()));
    line.push(rootfs.display().to_string());
    line.extend(c["Entrypoint"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()));
    line.extend(args.iter().map(|a| a.to_string()));
    (program("env"), line)
}

fn assert_root() {
    let uid = String::from_utf8(run(Command::new("id").arg("-u")).stdout).unwrap();
    assert_eq!(uid.trim(), "0", "this test unpacks the image and runs it with chroot, which needs root (run as root)");
}

/// The chart's trusted CA wiring works with this image: SSL_CERT_DIR as the chart renders it
/// (values.yaml's systemCertDir, which holds the image's bundle, then the directory the
/// ConfigMap is mounted at) makes the binary in the image trust a registry signed by a private
/// CA, which it refuses without.
#[test]
fn the_charts_trusted_ca_bundle_is_trusted_by_the_binary_in_the_image() {
    assert_root();
    let image = image();
    let dir = support::temp_dir("image-ca-");
    let (rootfs, config) = unpack(&image.layout, &image.digest, &dir.path().join("rootfs"));
    let chart = repo().join("charts/imageset-operator");
    let values: Value =
        serde_saphyr::from_str(&String::from_utf8(read(&chart.join("values.yaml"))).unwrap()).expect("values.yaml");
    let system = values["trustedCA"]["systemCertDir"].as_str().expect("values.yaml's trustedCA.systemCertDir");
    let bundle = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.as_str().unwrap().strip_prefix("SSL_CERT_FILE="))
        .expect("SSL_CERT_FILE in the image's environment");
    assert_eq!(Path::new(bundle).parent(), Some(Path::new(system)), "the chart's systemCertDir is not the image's");
    let deployment = String::from_utf8(read(&chart.join("templates/deployment.yaml"))).unwrap();
    let mount = deployment
        .split("$caDir := \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the chart's trusted CA mount ($caDir in deployment.yaml)");

    let reg = Registry::start(RegistryOptions { tls: true, ..Default::default() });
    let pushed = Pusher::new(&reg).image("team/app", "1.0", Format::Oci, ("linux", "amd64"), &[(5, 4096)]);
    let mounted = rootfs.join(mount.trim_start_matches('/'));
    std::fs::create_dir_all(&mounted).unwrap();
    std::fs::write(mounted.join("ca-bundle.crt"), &reg.ca.as_ref().unwrap().ca_pem).unwrap();
    support::cli::write_isc(&rootfs.join("tmp"), &[format!("{}/team/app:1.0", reg.host)]);
    let mirror = |name: &str, env: &[String]| {
        let dest = format!("docker://{}/{name}", reg.host);
        let workspace = format!("--workspace=file:///tmp/{name}");
        let cache = format!("--cache-dir=/tmp/{name}-cache");
        let (prog, line) =
            in_image(&rootfs, &config, env, &["mirror", "-c", "/tmp/isc.yaml", &dest, &workspace, &cache]);
        let out = Command::new(prog).args(line).env_clear().output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = mirror("without", &[]);
    assert!(
        !ok && text.contains("UnknownIssuer"),
        "a private CA was trusted without the bundle, or refused for another reason:\n{text}"
    );
    let (ok, text) = mirror("with", &[format!("SSL_CERT_DIR={system}:{mount}")]);
    assert!(ok, "SSL_CERT_DIR={system}:{mount}:\n{text}");
    let cert_dir = reg.cert_dir.as_ref().unwrap().display().to_string();
    let raw = support::skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        &cert_dir,
        &format!("docker://{}/with/team/app:1.0", reg.host),
    ]);
    assert_eq!(support::sha256(&raw), pushed.digest);
}

fn image_set(src: &Registry, dst: &Registry, image: &str) -> ImageSetConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": "from-the-image", "namespace": NS},
        "spec": {
            "destination": format!("docker://{}/mirrored", dst.host),
            "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
            "mirror": {"additionalImages": [{"name": image}]},
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn the_image_from_a_registry_runs_version_crd_and_run_from_its_root_filesystem() {
    assert_root();
    let _turn = OPERATOR.lock().await;
    let image = std::thread::spawn(image).join().unwrap();
    let dir = support::temp_dir("image-run-");
    let (src, dst, reg, pushed) = std::thread::spawn(|| {
        let (src, dst, reg) = (
            Registry::start(RegistryOptions::default()),
            Registry::start(RegistryOptions::default()),
            Registry::start(RegistryOptions::default()),
        );
        let pushed = Pusher::new(&src).image("apps/app", "v1", Format::Oci, ("linux", "amd64"), &[(21, 96 << 10)]);
        (src, dst, reg, pushed)
    })
    .join()
    .unwrap();
    let (rootfs, config) = std::thread::scope(|s| s.spawn(|| pull_and_unpack(&reg, image, dir.path())).join().unwrap());

    // What the image holds besides the binary, as the build machine had it.
    let certs = "etc/ssl/certs/ca-certificates.crt";
    assert!(read(&rootfs.join(certs)) == read(&Path::new("/").join(certs)), "the CA bundle is not the build machine's");
    assert_eq!(read(&rootfs.join("licenses/LICENSE")), read(&repo().join("LICENSE")));
    // The crates linked into the binary, each with its licence; test-only crates are not there.
    let third = String::from_utf8(read(&rootfs.join("licenses/rust/THIRD-PARTY.txt"))).unwrap();
    let crates: BTreeMap<&str, (&str, &str)> = third
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0], (f[1], f[2]))
        })
        .collect();
    for (name, needle) in [("tokio", "MIT"), ("serde", "MIT"), ("reqwest", "Apache"), ("kube", "Apache")] {
        let (version, licence) = crates.get(name).unwrap_or_else(|| panic!("{name} not listed: {third}"));
        assert!(licence.contains(needle), "{name}: {licence}");
        let dir = rootfs.join(format!("licenses/rust/{name}-{version}"));
        assert!(std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()), "{}", dir.display());
    }
    let tokio = rootfs.join(format!("licenses/rust/tokio-{}/LICENSE", crates["tokio"].0));
    assert!(String::from_utf8(read(&tokio)).unwrap().contains("Permission is hereby granted"));
    for test_only in ["bcrypt", "rcgen"] {
        assert!(!crates.contains_key(test_only), "{test_only} is a dev-dependency: {third}");
    }
    let passwd = String::from_utf8(read(&rootfs.join("etc/passwd"))).unwrap();
    assert!(passwd.lines().any(|l| l.split(':').nth(2) == Some("65532")), "{passwd}");
    assert_eq!(std::fs::metadata(rootfs.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
    let cache = rootfs.join("var/cache/imageset-operator");
    assert_eq!(std::fs::metadata(&cache).unwrap().uid(), 65532, "the default cache directory is not the user's");

    let rootfs_bytes: u64 = walk(&rootfs).iter().filter(|p| p.is_file()).map(|p| p.metadata().unwrap().len()).sum();

    // `version` and `crd` from the root filesystem, only its libraries and files in reach.
    let image_run = |args: &[&str]| {
        let (prog, line) = in_image(&rootfs, &config, &[], args);
        run(Command::new(prog).args(line).env_clear()).stdout
    };
    let release = target_dir().join("release/imageset-operator");
    let host_version = run(Command::new(&release).arg("version")).stdout;
    let version = image_run(&["version"]);
    assert_eq!(String::from_utf8_lossy(&version), String::from_utf8_lossy(&host_version));
    assert!(String::from_utf8_lossy(&version).starts_with(&format!("imageset-operator {}", env!("CARGO_PKG_VERSION"))));
    assert!(image_run(&["crd"]) == read(&repo().join("crds/crds.yaml")), "the image's crd differs from crds/crds.yaml");

    // `run` as the operator's ServiceAccount, its kubeconfig put where the image can read it.
    let cp = cluster::shared();
    let admin = cp.client().await;
    clear_left_behind(&admin).await;
    cluster::ensure_namespace(&admin, NS).await;
    let kubeconfig = service_account_kubeconfig_in(cp, &admin, dir.path(), NS).await;
    std::fs::create_dir_all(rootfs.join("etc/imageset-operator")).unwrap();
    std::fs::copy(&kubeconfig, rootfs.join("etc/imageset-operator/kubeconfig")).unwrap();
    std::fs::set_permissions(rootfs.join("etc/imageset-operator/kubeconfig"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let admin_addr = format!("127.0.0.1:{}", support::free_port());
    // As config/manager's Deployment runs it: its namespace and pod name from the downward API.
    let env = [
        "KUBECONFIG=/etc/imageset-operator/kubeconfig".to_string(),
        format!("POD_NAMESPACE={NS}"),
        "POD_NAME=imageset-operator-from-the-image".to_string(),
    ];
    let admin_flag = format!("--admin-addr={admin_addr}");
    let (prog, line) = in_image(&rootfs, &config, &env, &["run", &admin_flag, "--retry-times=0"]);
    let started = Instant::now();
    let mut operator = support::Guarded::spawn(&prog, &line, &dir.path().join("operator.log"), None);
    let http = reqwest::Client::new();
    let readyz = format!("http://{admin_addr}/readyz");
    let ready_after = loop {
        operator.alive();
        if let Ok(r) = http.get(&readyz).send().await
            && r.status() == 200
        {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "/readyz not 200 after 60s:\n{}", operator.log_tail()());
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    // The leader's Lease names the pod: the Deployment's environment reached the process.
    let lease = Api::<Lease>::namespaced(admin.clone(), NS).get("imageset-operator").await.unwrap();
    let holder = lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("imageset-operator-from-the-image"));

    let image_ref = format!("{}/apps/app@{}", src.host, pushed.digest);
    let api: Api<ImageSetConfiguration> = Api::namespaced(admin.clone(), NS);
    let _ = api.delete("from-the-image", &DeleteParams::default()).await;
    api.create(&PostParams::default(), &image_set(&src, &dst, &image_ref)).await.unwrap();
    let st = finished(&api, "from-the-image", 120).await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").expect("a Ready condition");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Mirrored"), "{}", ready.message);
    assert_eq!(st.counts.as_ref().map(|c| (c.copied, c.failed)), Some((1, 0)), "{st:?}");
    let mirrored = format!("docker://{}/mirrored/apps/app@{}", dst.host, pushed.digest);
    let raw = std::thread::spawn(move || support::skopeo(&["inspect", "--tls-verify=false", "--raw", &mirrored]))
        .join()
        .unwrap();
    assert_eq!(support::sha256(&raw), pushed.digest);
    // The run wrote its cache where the image's default says, as the image's user.
    let written: Vec<_> = walk(&cache).into_iter().filter(|p| p.is_file()).collect();
    assert!(!written.is_empty(), "nothing in the image's cache directory");
    for p in &written {
        assert_eq!(std::fs::metadata(p).unwrap().uid(), 65532, "{} not written by 65532", p.display());
    }

    api.delete("from-the-image", &DeleteParams::default()).await.unwrap();
    for _ in 0..600 {
        if api.get_opt("from-the-image").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(api.get_opt("from-the-image").await.unwrap().is_none(), "the image set was not finalized");
    println!(
        "image {}: {:.1} MB in the registry, {:.1} MB unpacked; run: /readyz 200 after {} ms",
        image.digest,
        image.compressed_bytes as f64 / 1e6,
        rootfs_bytes as f64 / 1e6,
        ready_after.as_millis()
    );
    drop(operator);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
