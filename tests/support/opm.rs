//! Real-shaped operator catalog images and real `opm` to judge them.
//!
//! [`CatalogFixture`] turns file-based catalogs (FBC) into a catalog image in a loopback
//! registry the way `opm generate dockerfile` images are built: the FBC under `/configs`, a
//! cache pre-built by `opm serve --cache-only` under `/tmp/cache`, and
//! `Entrypoint ["/bin/opm"]`, `Cmd ["serve","/configs","--cache-dir=/tmp/cache"]`. Every image
//! the FBC names gets a small synthetic stand-in in the same registry and the FBC is rewritten
//! to point at them, so mirroring a catalog has real targets. [`extract_image`] pulls an image
//! into a directory independently of the code under test, and [`OpmServer`] runs the host's
//! opm on the extracted root with the image's own Cmd, asked questions through grpcurl.
//!
//! Found with opm v1.73.0 (see scripts/install-test-deps): with `--cache-dir` and without
//! `--cache-only`, `--cache-enforce-integrity` defaults to true, so a cache that does not match
//! `/configs` stops opm at start; with `--cache-enforce-integrity=false`, or with no
//! `--cache-dir` (opm then uses a temporary one), opm rebuilds the cache at start and serves.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::content::{Format, Pushed, Pusher};
use super::image::{ImageConfig, push_image, tar_tree};
use super::registry::Registry;
use super::{Guarded, free_port, require, sha256, temp_dir};

/// The label that tells OLM and oc-mirror where an image's FBC lives.
pub const CONFIGS_LABEL: &str = "operators.operatorframework.io.index.configs.v1";

/// Builds a catalog image from FBC directories; see the module docs.
pub struct CatalogFixture {
    repo: String,
    tag: String,
    dirs: Vec<PathBuf>,
    format: Format,
    multi_arch: bool,
}

/// A catalog image pushed by [`CatalogFixture::build`].
pub struct Catalog {
    /// `host/repo:tag`.
    pub reference: String,
    /// Digest of the top manifest (the index when multi-arch).
    pub digest: String,
    /// What was pushed (top manifest and every blob).
    pub pushed: Pushed,
    /// The rewritten FBC, as shipped under `/configs`.
    pub configs: PathBuf,
    /// The opm cache built from it, as shipped under `/tmp/cache`.
    pub cache: PathBuf,
    /// Every image reference of the original FBC -> its stand-in in the registry.
    pub images: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

impl CatalogFixture {
    /// A catalog to push as `repo:tag`: Docker v2 schema 2, single linux/amd64 image.
    pub fn new(repo: &str, tag: &str) -> Self {
        CatalogFixture {
            repo: repo.into(),
            tag: tag.into(),
            dirs: Vec::new(),
            format: Format::Docker,
            multi_arch: false,
        }
    }

    /// Adds an FBC directory. A directory holding FBC files itself is one package and lands at
    /// `configs/<its name>/`; one holding only subdirectories is a catalog whose children land
    /// in `configs/` (as oc-mirror's test catalogs and opm's own layout have them).
    pub fn fbc(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dirs.push(dir.into());
        self
    }

    /// Manifest family of the catalog and the stand-in images.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Pushes the catalog as an index over linux/amd64 and linux/arm64 sharing the layers.
    pub fn multi_arch(mut self, on: bool) -> Self {
        self.multi_arch = on;
        self
    }

    /// Pushes the stand-ins, writes the rewritten FBC, builds the opm cache and pushes the
    /// catalog image to `reg`.
    pub fn build(self, reg: &Registry) -> Catalog {
        assert!(!self.dirs.is_empty(), "a catalog needs at least one FBC directory");
        let push = Pusher::new(reg);
        let originals: BTreeSet<String> = self.dirs.iter().flat_map(|d| image_refs(&fbc_documents(d))).collect();
        let images: BTreeMap<String, String> =
            originals.iter().map(|o| (o.clone(), push_stand_in(&push, reg, o, self.format))).collect();

        let dir = temp_dir("catalog-");
        let root = dir.path().join("rootfs");
        let configs = root.join("configs");
        for src in &self.dirs {
            let package_dir = std::fs::read_dir(src)
                .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
                .any(|e| e.map(|e| is_fbc_file(&e.path())).unwrap_or(false));
            let dst = if package_dir { configs.join(src.file_name().expect("dir name")) } else { configs.clone() };
            copy_rewritten(src, &dst, &images);
        }
        let left: BTreeSet<String> = image_refs(&fbc_documents(&configs));
        let new: BTreeSet<String> = images.values().cloned().collect();
        assert!(left.is_subset(&new), "references not rewritten: {:?}", left.difference(&new).collect::<Vec<_>>());

        // The cache is built exactly as `opm generate dockerfile` images do in their RUN step.
        let cache = root.join("tmp/cache");
        let out = Command::new(require("opm"))
            .arg("serve")
            .arg(&configs)
            .arg(format!("--cache-dir={}", cache.display()))
            .args(["--cache-only", "--pprof-addr="])
            .arg(format!("--termination-log={}", dir.path().join("termination-log").display()))
            .output()
            .expect("run opm");
        assert!(out.status.success(), "opm serve --cache-only: {}", String::from_utf8_lossy(&out.stderr));

        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/README"), "Test catalog image: tests run the host's opm on its rootfs.\n")
            .unwrap();
        let layers = vec![tar_tree(&root, "bin"), tar_tree(&root, "configs"), tar_tree(&root, "tmp/cache")];
        let config = json!({
            "Entrypoint": ["/bin/opm"],
            "Cmd": ["serve", "/configs", "--cache-dir=/tmp/cache"],
            "Labels": {CONFIGS_LABEL: "/configs"},
        });
        let archs: &[&str] = if self.multi_arch { &["amd64", "arm64"] } else { &["amd64"] };
        let pushed = push_image(reg, &self.repo, &self.tag, self.format, archs, &layers, config);
        Catalog {
            reference: format!("{}/{}:{}", reg.host, self.repo, self.tag),
            digest: pushed.digest.clone(),
            pushed,
            configs,
            cache,
            images,
            _dir: dir,
        }
    }
}

/// Every document of every FBC file under `dir` (YAML multi-document or JSON streams), in
/// path order.
pub fn fbc_documents(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for path in walk_all(dir, false).into_iter().filter(|p| is_fbc_file(p)) {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = if path.extension().is_some_and(|e| e == "json") {
            serde_json::Deserializer::from_str(&text)
                .into_iter::<Value>()
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        } else {
            // Real catalogs hold documents with thousands of nodes, above the parser's defaults.
            serde_saphyr::from_multiple_with_options(&text, imageset_operator::catalog::yaml_options())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        out.extend(docs.into_iter().filter(|d| !d.is_null()));
    }
    out
}

/// Each `olm.bundle`'s `image` and `relatedImages[].image`, deduplicated.
pub fn image_refs(docs: &[Value]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in docs.iter().filter(|d| d["schema"] == "olm.bundle") {
        let related = d["relatedImages"].as_array().into_iter().flatten().map(|r| &r["image"]);
        for image in std::iter::once(&d["image"]).chain(related).filter_map(Value::as_str) {
            if !image.is_empty() {
                out.insert(image.to_string());
            }
        }
    }
    out
}

/// Splits `name[:tag][@digest]` into its parts.
pub(super) fn split_ref(reference: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (reference, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// Pushes a small image standing in for `original` under `host/<original name>` and returns
/// the new reference: same tag, and pinned to the stand-in's digest when the original was.
fn push_stand_in(push: &Pusher, reg: &Registry, original: &str, format: Format) -> String {
    let (name, tag, digest) = split_ref(original);
    // A registry port in the original name is not valid in a repository path.
    let repo = name.replace(':', "-");
    let push_tag = match (tag, digest) {
        (Some(t), _) => t.to_string(),
        (None, Some(d)) => format!("orig-{}", &d.trim_start_matches("sha256:")[..12]),
        (None, None) => "latest".to_string(),
    };
    let seed = u64::from_str_radix(&sha256(original.as_bytes())[7..23], 16).unwrap();
    let pushed = push.image(&repo, &push_tag, format, ("linux", "amd64"), &[(seed, 1024)]);
    match (tag, digest) {
        (Some(t), Some(_)) => format!("{}/{repo}:{t}@{}", reg.host, pushed.digest),
        (None, Some(_)) => format!("{}/{repo}@{}", reg.host, pushed.digest),
        (Some(t), None) => format!("{}/{repo}:{t}", reg.host),
        (None, None) => format!("{}/{repo}", reg.host),
    }
}

fn is_fbc_file(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
}

/// Every regular file under `dir` (and every directory, with `dirs`), sorted.
pub(super) fn walk_all(dir: &Path, dirs: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            if dirs || !p.is_dir() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Copies `src` to `dst`, replacing every whole reference of `map` in FBC files' text, so the
/// files keep their format (quoting, order, comments).
fn copy_rewritten(src: &Path, dst: &Path, map: &BTreeMap<String, String>) {
    let mut keys: Vec<&String> = map.keys().collect();
    // Longest first: the regex takes the first alternative that matches at a position.
    keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
    let pattern = keys.iter().map(|k| regex::escape(k)).collect::<Vec<_>>().join("|");
    let re = (!keys.is_empty()).then(|| regex::Regex::new(&pattern).expect("reference regex"));
    let ref_char = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
    for file in walk_all(src, false) {
        let out = dst.join(file.strip_prefix(src).unwrap());
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        assert!(!out.exists(), "{} is given by two FBC directories", out.display());
        let (Some(re), true) = (&re, is_fbc_file(&file)) else {
            std::fs::copy(&file, &out).unwrap();
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let mut new = String::with_capacity(text.len());
        let mut last = 0;
        for m in re.find_iter(&text) {
            // A match inside a longer reference (`:v1` of `:v1.1`) is not that reference.
            let before = text[..m.start()].chars().next_back().is_some_and(ref_char);
            let after = text[m.end()..].chars().next().is_some_and(ref_char);
            if before || after {
                continue;
            }
            new.push_str(&text[last..m.start()]);
            new.push_str(&map[m.as_str()]);
            last = m.end();
        }
        new.push_str(&text[last..]);
        std::fs::write(&out, new).unwrap();
    }
}

/// The host's opm serving an extracted catalog image with the image's own Cmd. Stops on drop
/// (and with the test process, through [`Guarded`]'s watchdog).
pub struct OpmServer {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The arguments opm was started with.
    pub args: Vec<String>,
    proc: Guarded,
    _dir: tempfile::TempDir,
}

impl OpmServer {
    /// Starts opm with `config`'s Cmd, its absolute paths moved into `rootfs`, on a free port;
    /// waits until it answers gRPC health checks. Adds `--pprof-addr=` (opm's default,
    /// localhost:6060, would clash between tests) and a termination log in a temp dir (the
    /// default, /dev/termination-log, is the host's /dev). If opm exits first, the error holds
    /// its output.
    pub fn start(rootfs: &Path, config: &ImageConfig) -> Result<OpmServer, String> {
        let mut args = config.cmd.clone();
        match config.entrypoint.as_slice() {
            [e] if e.ends_with("/opm") => {}
            [] if args.first().is_some_and(|a| a.ends_with("/opm")) => drop(args.remove(0)),
            other => return Err(format!("not an opm image: Entrypoint {other:?}, Cmd {args:?}")),
        }
        let inside = |p: &str| rootfs.join(p.trim_start_matches('/')).display().to_string();
        for a in args.iter_mut() {
            if a.starts_with('/') {
                *a = inside(a);
            } else if let Some((flag, value)) = a.split_once('=')
                && flag.starts_with('-')
                && value.starts_with('/')
            {
                *a = format!("{flag}={}", inside(value));
            }
        }
        let port = free_port();
        match flag_at(&args, "--port").or(flag_at(&args, "-p")) {
            Some(i) if args[i].contains('=') => args[i] = format!("--port={port}"),
            Some(i) => args[i + 1] = port.to_string(),
            None => args.push(format!("--port={port}")),
        }
        let dir = temp_dir("opm-");
        if flag_at(&args, "--pprof-addr").is_none() {
            args.push("--pprof-addr=".into());
        }
        if flag_at(&args, "--termination-log").or(flag_at(&args, "-t")).is_none() {
            args.push(format!("--termination-log={}", dir.path().join("termination-log").display()));
        }
        let mut proc = Guarded::spawn(&require("opm"), &args, &dir.path().join("opm.log"), None);
        let addr = format!("127.0.0.1:{port}");
        let start = Instant::now();
        let mut listening = false;
        while !listening && start.elapsed() < Duration::from_secs(60) {
            if let Some(status) = exited(&mut proc) {
                let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
                return Err(format!("opm {args:?} exited ({status}):\n{log}"));
            }
            listening = TcpStream::connect(&addr).is_ok();
            if !listening {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Dropping the server on an error below stops opm.
        let server = OpmServer { addr, args, proc, _dir: dir };
        let tail = server.proc.log_tail();
        if !listening {
            return Err(format!("opm {:?} not listening after 60s:\n{}", server.args, tail()));
        }
        // opm listens only once its cache is loaded: the first answer is the real one.
        match server.try_grpc("grpc.health.v1.Health/Check", None) {
            Ok(v) if v.first().is_some_and(|h| h["status"] == "SERVING") => Ok(server),
            other => Err(format!("opm at {} is not serving ({other:?}):\n{}", server.addr, tail())),
        }
    }

    /// Calls a gRPC `method` (`service/Method`) with a JSON request through grpcurl; returns
    /// every response message (streams give many).
    pub fn grpc(&self, method: &str, request: Option<&Value>) -> Vec<Value> {
        self.try_grpc(method, request).unwrap_or_else(|e| panic!("{e}\nopm log:\n{}", (self.proc.log_tail())()))
    }

    fn try_grpc(&self, method: &str, request: Option<&Value>) -> Result<Vec<Value>, String> {
        let mut cmd = Command::new(require("grpcurl"));
        cmd.args(["-plaintext", "-connect-timeout", "5", "-max-time", "60", "-max-msg-sz", "104857600"]);
        if let Some(r) = request {
            cmd.arg("-d").arg(r.to_string());
        }
        let out = cmd.arg(&self.addr).arg(method).output().expect("run grpcurl");
        if !out.status.success() {
            return Err(format!("grpcurl {method} at {}: {}", self.addr, String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("grpcurl {method} output: {e}"))
    }

    /// `api.Registry/ListPackages`: the package names.
    pub fn packages(&self) -> Vec<String> {
        let list = self.grpc("api.Registry/ListPackages", None);
        list.iter().map(|p| text(&p["name"])).collect()
    }

    /// `api.Registry/GetPackage`: its channels with their head bundles, and its default.
    pub fn package(&self, name: &str) -> PackageInfo {
        let p = self.grpc("api.Registry/GetPackage", Some(&json!({"name": name}))).remove(0);
        let channels = p["channels"].as_array().into_iter().flatten();
        PackageInfo {
            name: text(&p["name"]),
            default_channel: text(&p["defaultChannelName"]),
            channels: channels.map(|c| (text(&c["name"]), text(&c["csvName"]))).collect(),
        }
    }

    /// `api.Registry/ListBundles`: `(package, channel, csvName)` of every bundle in every
    /// channel.
    pub fn bundles(&self) -> Vec<(String, String, String)> {
        let list = self.grpc("api.Registry/ListBundles", None);
        list.iter().map(|b| (text(&b["packageName"]), text(&b["channelName"]), text(&b["csvName"]))).collect()
    }
}

/// What `GetPackage` says of a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageInfo {
    /// The package name.
    pub name: String,
    /// `defaultChannelName`.
    pub default_channel: String,
    /// Channel name -> the csvName of its head bundle.
    pub channels: BTreeMap<String, String>,
}

/// A JSON string's text ("" for anything else).
pub(super) fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Where `name` (as `name value` or `name=value`) is in `args`.
fn flag_at(args: &[String], name: &str) -> Option<usize> {
    args.iter().position(|a| a == name || a.strip_prefix(name).is_some_and(|v| v.starts_with('=')))
}

/// Whether the guarded process has exited, without failing the test as `Guarded::alive` does
/// (a refused start is a result here). The watchdog shell exits with the program's status.
fn exited(g: &mut Guarded) -> Option<ExitStatus> {
    g.child.try_wait().ok().flatten()
}
