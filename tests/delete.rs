//! The delete workflow end to end through the CLI: images mirrored into a real registry, a
//! delete plan generated from a DeleteImageSetConfiguration, executed against that registry,
//! and the registry read back with skopeo. Its access log says which requests were sent.
//! Expected lists are derived from what the tests pushed, the graph the release world serves,
//! and what the destination registry holds.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::cli::{bin, mirror_to_mirror, ok, write_isc};
use support::content::{Format, Pushed, Pusher};
use support::registry::{Registry, RegistryOptions};
use support::release::{ReleaseWorld, ReleaseWorldOptions};
use support::{require, sha256, shared_data, temp_dir};

const API_VERSION: &str = "mirror.openshift.io/v2alpha1";

/// A finished run of the binary.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit 0.
    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

fn run(mut c: Command) -> Run {
    let o = c.output().expect("run imageset-operator");
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A registry that logs its requests.
fn logged() -> RegistryOptions {
    RegistryOptions { access_log: true, ..Default::default() }
}

/// The digest of the manifest `reference` (`repo:tag` or `repo@digest`) names at `reg`, read
/// by skopeo; `None` when the registry says it does not know it (any other failure fails).
fn digest_at(reg: &Registry, reference: &str) -> Option<String> {
    let o = Command::new(require("skopeo"))
        .args(["inspect", "--raw"])
        .args(reg.skopeo_flags())
        .arg(format!("docker://{}/{reference}", reg.host))
        .output()
        .expect("run skopeo");
    if o.status.success() {
        return Some(sha256(&o.stdout));
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("manifest unknown"), "skopeo inspect {reference}: {err}");
    None
}

/// `delete -c DISC --generate --workspace file://<dir>/ws --cache-dir <dir>/cache DEST` against
/// plain-HTTP registries (the workspace and cache `mirror_to_mirror` uses), plus `extra`.
fn generate(disc: &Path, dir: &Path, dest: &str, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["delete", "--generate", "-c"])
        .arg(disc)
        .arg("--workspace")
        .arg(format!("file://{}", dir.join("ws").display()))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(extra)
        .arg(dest);
    c
}

/// `delete --delete-yaml-file LIST --cache-dir <dir>/cache DEST` against plain-HTTP
/// registries, plus `extra`.
fn execute(list: &Path, dir: &Path, dest: &str, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["delete", "--delete-yaml-file"])
        .arg(list)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(extra)
        .arg(dest);
    c
}

/// Where `delete --generate` writes its list (`id` from `--delete-id`).
fn list_path(dir: &Path, id: Option<&str>) -> PathBuf {
    let suffix = id.map(|i| format!("-{i}")).unwrap_or_default();
    dir.join("ws/working-dir/delete").join(format!("delete-images{suffix}.yaml"))
}

/// The summary line of an execution.
fn summary(deleted: usize, gone: usize, protected: usize, failed: usize, listed: usize) -> String {
    format!("{deleted} deleted, {gone} already gone, {protected} protected, {failed} failed (of {listed} listed)")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// An image set mirroring `block` (the lines under `mirror:`) and a delete of the same block
/// (under `delete:`), as `isc.yaml` and `disc.yaml` in `dir`.
fn mirror_and_delete(dir: &Path, block: &str) -> (PathBuf, PathBuf) {
    let isc =
        write(dir, "isc.yaml", &format!("apiVersion: {API_VERSION}\nkind: ImageSetConfiguration\nmirror:\n{block}"));
    let disc = write(
        dir,
        "disc.yaml",
        &format!("apiVersion: {API_VERSION}\nkind: DeleteImageSetConfiguration\ndelete:\n{block}"),
    );
    (isc, disc)
}

/// One item of a delete list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    reference: String,
    name: String,
    kind: String,
}

/// The keys of each mapping in a block-style YAML text, in the order written: the top-level
/// mapping first, then each item of a block sequence (`- key: ...` and its following keys).
fn key_order(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let key = |s: &str| s.split_once(':').map(|(k, _)| k.trim().to_string());
    let mut top = Vec::new();
    let mut items: Vec<Vec<String>> = Vec::new();
    let mut item_indent = None;
    for line in text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if let Some(rest) = body.strip_prefix("- ") {
            items.push(key(rest).into_iter().collect());
            item_indent = Some(indent + 2);
        } else if indent == 0 {
            top.extend(key(body));
            item_indent = None;
        } else if Some(indent) == item_indent {
            items.last_mut().expect("an item").extend(key(body));
        }
    }
    (top, items)
}

/// Reads a delete list, checking oc-mirror's form: `apiVersion`, `kind`, `items` in that
/// order, each item `imageName`, `imageReference`, `type` in that order, the items sorted by
/// `imageReference` with one per reference.
fn read_list(path: &Path) -> Vec<Item> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (top, keys) = key_order(&text);
    assert_eq!(top, ["apiVersion", "kind", "items"], "{text}");
    for k in &keys {
        assert_eq!(k, &["imageName", "imageReference", "type"], "{text}");
    }
    let v: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
    assert_eq!(v["apiVersion"], API_VERSION);
    assert_eq!(v["kind"], "DeleteImageList");
    let s = |v: &Value| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string();
    let items: Vec<Item> = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {text}"))
        .iter()
        .map(|i| Item { name: s(&i["imageName"]), reference: s(&i["imageReference"]), kind: s(&i["type"]) })
        .collect();
    assert_eq!(items.len(), keys.len(), "{text}");
    // Each value on its key's line, as oc-mirror's writer leaves it (no folded blocks).
    for i in &items {
        for line in [format!("- imageName: {}", i.name), format!("  imageReference: {}", i.reference)] {
            assert!(text.lines().any(|l| l == line), "{line:?} is not one line of:\n{text}");
        }
    }
    let refs: Vec<&String> = items.iter().map(|i| &i.reference).collect();
    assert!(refs.windows(2).all(|w| w[0] < w[1]), "not sorted by imageReference, one per reference: {refs:?}");
    items
}

/// `host/repo:tag` of a `docker://` reference, without the host: what `digest_at` takes.
fn at(reg: &Registry, reference: &str) -> String {
    let rest = reference.strip_prefix("docker://").unwrap_or(reference);
    rest.strip_prefix(&format!("{}/", reg.host)).unwrap_or_else(|| panic!("{reference} is not at {}", reg.host)).into()
}

/// Every `DELETE` the registry answered, as (URI, status).
fn deletes(reg: &Registry) -> Vec<(String, u16)> {
    reg.access_log().into_iter().filter(|a| a.method == "DELETE").map(|a| (a.uri, a.status)).collect()
}

/// Requests that could change the registry (anything but `GET` and `HEAD`), as `METHOD URI`.
fn writes(reg: &Registry) -> Vec<String> {
    let log = reg.access_log().into_iter().filter(|a| a.method != "GET" && a.method != "HEAD");
    log.map(|a| format!("{} {}", a.method, a.uri)).collect()
}

/// The counts of an execution's summary line: deleted, already gone, protected, failed, listed.
fn tally(stdout: &str) -> [usize; 5] {
    let line = stdout
        .lines()
        .find(|l| l.contains(" deleted, ") && l.ends_with(" listed)"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let numbers: Vec<usize> =
        line.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).map(|w| w.parse().unwrap()).collect();
    numbers.try_into().unwrap_or_else(|n| panic!("{line}: {n:?}"))
}

// ---------------------------------------------------------------------------------------------
// Additional images.

/// An image pushed to the source registry and mirrored under `mirror/` at the destination.
struct Image {
    /// `SRC/repo:tag`, as the image sets name it.
    source: String,
    repo: String,
    tag: String,
    pushed: Pushed,
}

impl Image {
    /// Its repository at the destination.
    fn dest_repo(&self) -> String {
        format!("mirror/{}", self.repo)
    }
    /// `mirror/repo:tag`.
    fn at_dest(&self) -> String {
        format!("{}:{}", self.dest_repo(), self.tag)
    }
}

struct Mirrored {
    src: Registry,
    dst: Registry,
    dir: tempfile::TempDir,
    /// `docker://DST/mirror`.
    dest: String,
    /// A multi-arch image, two single images and one that is never listed (`keep/me`,
    /// sharing a layer with `apps/single`).
    images: Vec<Image>,
}

impl Mirrored {
    /// The images a delete lists (all but the last).
    fn listed(&self) -> &[Image] {
        &self.images[..self.images.len() - 1]
    }
    fn unlisted(&self) -> &Image {
        self.images.last().unwrap()
    }
}

/// Four images (one an OCI index over three platforms) pushed to a source registry and
/// mirrored with `mirror` to a destination started with `dst_opts` under `/mirror`.
fn mirrored(dst_opts: RegistryOptions) -> Mirrored {
    let src = Registry::start(logged());
    let dst = Registry::start(dst_opts);
    let push = Pusher::new(&src);
    let platforms = [("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")];
    let pushed = [
        push.multi_arch("apps/multi", "v1", Format::Oci, &platforms, 11),
        push.image("apps/single", "1.0", Format::Docker, ("linux", "amd64"), &[(31, 20_000), (32, 7_000)]),
        push.image("base/tools", "2.1", Format::Oci, ("linux", "amd64"), &[(41, 5_000)]),
        push.image("keep/me", "3", Format::Docker, ("linux", "amd64"), &[(31, 20_000), (33, 1_000)]),
    ];
    let images: Vec<Image> = pushed
        .into_iter()
        .map(|p| Image {
            source: format!("{}/{}:{}", src.host, p.repo, p.tag),
            repo: p.repo.clone(),
            tag: p.tag.clone(),
            pushed: p,
        })
        .collect();
    let dir = temp_dir("delete-");
    let isc = write_isc(dir.path(), &images.iter().map(|i| i.source.clone()).collect::<Vec<_>>());
    let dest = format!("docker://{}/mirror", dst.host);
    ok(mirror_to_mirror(&isc, dir.path(), &dest, &[]).output().unwrap());
    for i in &images {
        assert_eq!(digest_at(&dst, &i.at_dest()).as_ref(), Some(&i.pushed.digest), "{} not mirrored", i.source);
    }
    Mirrored { src, dst, dir, dest, images }
}

/// A DeleteImageSetConfiguration naming these additional images.
fn write_disc(dir: &Path, images: &[Image]) -> PathBuf {
    let mut y = format!("apiVersion: {API_VERSION}\nkind: DeleteImageSetConfiguration\ndelete:\n  additionalImages:\n");
    for i in images {
        y.push_str(&format!("  - name: {}\n", i.source));
    }
    write(dir, "disc.yaml", &y)
}

/// Tags `image`'s manifest a second time at the destination; returns `mirror/repo:tag2`.
fn second_tag(w: &Mirrored, image: &Image, tag: &str) -> String {
    let p = &image.pushed;
    let d = Pusher::new(&w.dst).manifest(&image.dest_repo(), tag, &p.manifest, &p.media_type);
    assert_eq!(d, p.digest);
    let reference = format!("{}:{tag}", image.dest_repo());
    assert_eq!(digest_at(&w.dst, &reference).as_ref(), Some(&p.digest));
    reference
}

#[test]
fn additional_images_are_listed_as_oc_mirror_does_deleted_by_digest_and_a_rerun_finds_them_gone() {
    let w = mirrored(logged());
    let (listed, kept) = (w.listed(), w.unlisted());
    let single = &w.images[1];
    let alias = second_tag(&w, single, "alias");
    let dir = w.dir.path();
    let disc = write_disc(dir, listed);

    let before = writes(&w.dst);
    let g = run(generate(&disc, dir, &w.dest, &[])).ok();
    let file = list_path(dir, None);
    assert!(g.stdout.contains(&file.display().to_string()), "{}", g.stdout);
    let mut want: Vec<Item> = listed
        .iter()
        .map(|i| Item {
            name: i.source.clone(),
            reference: format!("docker://{}/{}", w.dst.host, i.at_dest()),
            kind: "generic".into(),
        })
        .collect();
    want.sort();
    assert_eq!(read_list(&file), want);
    let kept_disc = std::fs::read_to_string(dir.join("ws/working-dir/delete/delete-imageset-config.yaml")).unwrap();
    assert_eq!(kept_disc, std::fs::read_to_string(&disc).unwrap(), "the DISC is kept beside its list");
    assert_eq!(writes(&w.dst), before, "generating wrote to the registry");

    // oc-mirror's safety checks: a list executed against another registry path fails every
    // item and sends nothing.
    let n = listed.len();
    let elsewhere = format!("docker://{}/elsewhere", w.dst.host);
    let refused = run(execute(&file, dir, &elsewhere, &[]));
    assert_eq!(refused.code, Some(1), "stdout: {}\nstderr: {}", refused.stdout, refused.stderr);
    assert!(refused.stdout.contains(&summary(0, 0, 0, n, n)), "{}", refused.stdout);
    for i in listed {
        let line = format!("error deleting docker://{}/{}: ", w.dst.host, i.at_dest());
        assert!(refused.stdout.contains(&line), "{line:?} not in:\n{}", refused.stdout);
    }
    assert!(refused.stdout.contains(&format!("not under the registry {}/elsewhere", w.dst.host)), "{}", refused.stdout);
    assert_eq!(writes(&w.dst), before, "a refused list sent something");

    let e = run(execute(&file, dir, &w.dest, &[])).ok();
    assert!(e.stdout.contains(&summary(n, 0, 0, 0, n)), "{}", e.stdout);
    assert!(e.stdout.contains("Remember to execute a garbage collect"), "{}", e.stdout);
    for i in listed {
        assert_eq!(digest_at(&w.dst, &i.at_dest()), None, "{} is still there", i.at_dest());
    }
    // Deleting by digest takes every tag of that digest in the repository (oc-mirror's
    // semantics): the second tag goes with the listed one.
    assert_eq!(digest_at(&w.dst, &alias), None, "{alias} outlived the digest it names");
    assert_eq!(digest_at(&w.dst, &kept.at_dest()).as_ref(), Some(&kept.pushed.digest), "an unlisted image went");
    // One DELETE per listed image, by the digest the tag named, each accepted.
    let want_deletes: BTreeSet<(String, u16)> =
        listed.iter().map(|i| (format!("/v2/{}/manifests/{}", i.dest_repo(), i.pushed.digest), 202)).collect();
    let sent = deletes(&w.dst);
    assert_eq!(sent.len(), n, "{sent:?}");
    assert_eq!(sent.into_iter().collect::<BTreeSet<_>>(), want_deletes);

    // Again: everything is already gone, and nothing is sent.
    let again = run(execute(&file, dir, &w.dest, &[])).ok();
    assert!(again.stdout.contains(&summary(0, n, 0, 0, n)), "{}", again.stdout);
    assert_eq!(w.dst.requests("DELETE", "/v2/"), n, "the second run sent a DELETE");
    assert_eq!(w.src.requests("DELETE", ""), 0, "the source registry was asked to delete");
}

#[test]
fn images_a_protecting_image_set_needs_stay_with_every_tag_of_their_digest() {
    let w = mirrored(logged());
    let (listed, kept) = (w.listed(), w.unlisted());
    let single = &w.images[1];
    let alias = second_tag(&w, single, "alias");
    let dir = w.dir.path();
    let disc = write_disc(dir, listed);
    run(generate(&disc, dir, &w.dest, &["--delete-id", "p1"])).ok();
    let file = list_path(dir, Some("p1"));
    assert_eq!(read_list(&file).len(), listed.len());
    assert!(dir.join("ws/working-dir/delete/delete-imageset-config-p1.yaml").is_file());

    // A live image set that needs one of the listed images (and the unlisted one).
    let protect_dir = dir.join("protect");
    std::fs::create_dir_all(&protect_dir).unwrap();
    let protect = write_isc(&protect_dir, &[single.source.clone(), kept.source.clone()]);
    let n = listed.len();
    let e = run(execute(&file, dir, &w.dest, &["--protect-config", &protect])).ok();
    let dest_ref = format!("docker://{}/{}", w.dst.host, single.at_dest());
    let kept_line = format!("kept {dest_ref} ({}): {protect} still needs it", single.pushed.digest);
    assert!(e.stdout.contains(&kept_line), "{kept_line:?} not in:\n{}", e.stdout);
    assert!(e.stdout.contains(&summary(n - 1, 0, 1, 0, n)), "{}", e.stdout);
    assert_eq!(digest_at(&w.dst, &single.at_dest()).as_ref(), Some(&single.pushed.digest));
    assert_eq!(digest_at(&w.dst, &alias).as_ref(), Some(&single.pushed.digest), "the second tag of a kept digest");
    assert_eq!(digest_at(&w.dst, &kept.at_dest()).as_ref(), Some(&kept.pushed.digest));
    for i in listed.iter().filter(|i| i.source != single.source) {
        assert_eq!(digest_at(&w.dst, &i.at_dest()), None, "{} is still there", i.at_dest());
    }
    let sent = deletes(&w.dst);
    assert!(
        !sent.iter().any(|(uri, _)| uri.contains(&single.pushed.digest)),
        "a DELETE of the protected digest was sent: {sent:?}"
    );
    assert_eq!(sent.len(), n - 1, "{sent:?}");
}

#[test]
fn a_registry_refusing_deletes_stops_the_execution_before_anything_is_deleted() {
    let w = mirrored(RegistryOptions { deletion_disabled: true, access_log: true, ..Default::default() });
    let dir = w.dir.path();
    let disc = write_disc(dir, w.listed());
    run(generate(&disc, dir, &w.dest, &[])).ok();
    let e = run(execute(&list_path(dir, None), dir, &w.dest, &[]));
    assert_eq!(e.code, Some(1), "stdout: {}\nstderr: {}", e.stdout, e.stderr);
    for needle in [w.dst.host.as_str(), "storage.delete.enabled", "nothing was deleted"] {
        assert!(e.stderr.contains(needle), "{needle:?} not in stderr: {}", e.stderr);
    }
    for i in &w.images {
        assert_eq!(digest_at(&w.dst, &i.at_dest()).as_ref(), Some(&i.pushed.digest), "{} went", i.at_dest());
    }
    let sent = deletes(&w.dst);
    assert!(sent.len() <= 1, "DELETEs went on after a refusal: {sent:?}");
    assert!(sent.iter().all(|(_, status)| *status == 405), "{sent:?}");
}

#[test]
fn force_cache_delete_forgets_the_deleted_images_and_keeps_what_others_need() {
    let w = mirrored(logged());
    let (listed, kept) = (w.listed(), w.unlisted());
    let dir = w.dir.path();
    let cache_root = dir.join("cache");
    let cache_dir = cache_root.join(".imageset-operator/cache");
    let names = || -> BTreeMap<String, String> {
        serde_json::from_slice(&std::fs::read(cache_dir.join("names.json")).unwrap()).unwrap()
    };
    let before = names();
    for i in &w.images {
        assert_eq!(before.get(&i.source), Some(&i.pushed.digest), "the mirror recorded {}: {before:?}", i.source);
    }
    // What the kept image needs (among it a layer it shares with apps/single), and what only
    // the listed images need: their manifests, an index's children, configs and layers.
    let children = |p: &Pushed| -> Vec<String> {
        let v: Value = serde_json::from_slice(&p.manifest).unwrap();
        v["manifests"].as_array().into_iter().flatten().map(|m| m["digest"].as_str().unwrap().to_string()).collect()
    };
    let needed: BTreeSet<String> = kept.pushed.blobs.iter().cloned().chain([kept.pushed.digest.clone()]).collect();
    let freed: BTreeSet<String> = listed
        .iter()
        .flat_map(|i| i.pushed.blobs.iter().cloned().chain(children(&i.pushed)).chain([i.pushed.digest.clone()]))
        .filter(|d| !needed.contains(d))
        .collect();
    assert!(listed[1].pushed.blobs.iter().any(|b| needed.contains(b)), "apps/single shares no layer with keep/me");
    let open = || imageset_operator::cache::Cache::open(&cache_dir).unwrap();
    let cache = open();
    let missing: Vec<&String> = freed.iter().chain(&needed).filter(|d| !cache.has(d)).collect();
    assert!(missing.is_empty(), "the mirror did not cache: {missing:?}");
    drop(cache);

    let disc = write_disc(dir, listed);
    run(generate(&disc, dir, &w.dest, &[])).ok();
    let e = run(execute(&list_path(dir, None), dir, &w.dest, &["--force-cache-delete"])).ok();
    assert!(e.stdout.contains(&summary(listed.len(), 0, 0, 0, listed.len())), "{}", e.stdout);

    let after = names();
    for i in listed {
        assert!(!after.contains_key(&i.source), "the cache still names {}: {after:?}", i.source);
    }
    assert_eq!(after.get(&kept.source), Some(&kept.pushed.digest), "{after:?}");
    let cache = open();
    let left: Vec<&String> = freed.iter().filter(|d| cache.has(d)).collect();
    assert!(left.is_empty(), "still cached: {left:?}");
    let lost: Vec<&String> = needed.iter().filter(|d| !cache.has(d)).collect();
    assert!(lost.is_empty(), "removed though keep/me needs them: {lost:?}");
    drop(cache);
    let verify = run({
        let mut c = bin();
        c.args(["cache", "verify", "--cache-dir"]).arg(&cache_root);
        c
    })
    .ok();
    assert!(verify.stdout.contains("cache is clean"), "{}", verify.stdout);
}

// ---------------------------------------------------------------------------------------------
// Platform releases.

fn triple(v: &str) -> (u64, u64, u64) {
    let p: Vec<u64> = v.split('.').map(|x| x.parse().unwrap()).collect();
    (p[0], p[1], p[2])
}

#[test]
fn a_release_range_is_listed_as_payloads_components_and_graph_image_and_deleted() {
    let src = Registry::start(logged());
    let dst = Registry::start(logged());
    let (min, max) = ("4.13.3", "4.13.4");
    let w = ReleaseWorld::start(
        &src,
        ReleaseWorldOptions { versions: vec![min.into(), max.into()], multi: false, components: 8 },
    );
    // The range as the served graph has it.
    let url = format!("{}?channel=stable-4.13&arch=amd64", w.graph_url);
    let graph: Value =
        reqwest::blocking::Client::new().get(url).header("Accept", "application/json").send().unwrap().json().unwrap();
    let versions: BTreeSet<String> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_str().unwrap().to_string())
        .filter(|v| triple(v) >= triple(min) && triple(v) <= triple(max))
        .collect();
    assert!(!versions.is_empty());
    let payloads: Vec<_> = versions
        .iter()
        .map(|v| w.payloads.get(&(v.clone(), "amd64".into())).unwrap_or_else(|| panic!("no payload for {v}")))
        .collect();
    let served_payload = |v: &str| -> String {
        let node = graph["nodes"].as_array().unwrap().iter().find(|n| n["version"] == v).unwrap();
        node["payload"].as_str().unwrap().to_string()
    };

    let dir = temp_dir("delete-release-");
    let platform = format!(
        "  platform:\n    graph: true\n    channels:\n    - name: stable-4.13\n      minVersion: {min}\n      maxVersion: {max}\n"
    );
    let (isc, disc) = mirror_and_delete(dir.path(), &platform);
    let dest = format!("docker://{}/mirror", dst.host);
    let flags = w.release_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    ok(mirror_to_mirror(isc.to_str().unwrap(), dir.path(), &dest, &flags).output().unwrap());
    let graph_ref = "mirror/openshift/graph-image:latest";
    let graph_digest = digest_at(&dst, graph_ref).expect("the graph image was mirrored");

    let before = writes(&dst);
    let graph_requests = || w.requests().iter().filter(|r| r.contains("channel=")).count();
    let asked = graph_requests();
    assert!(asked > 0, "the mirror run asked the update service: {:?}", w.requests());
    run(generate(&disc, dir.path(), &dest, &flags)).ok();
    assert_eq!(writes(&dst), before, "generating wrote to the registry");
    assert_eq!(graph_requests(), asked, "the delete reads the graph the mirror run kept, not the update service");
    let items = read_list(&list_path(dir.path(), None));
    let h = &dst.host;
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for p in &payloads {
        want.insert(format!("docker://{h}/mirror/openshift/release-images:{}", p.tag), "ocpRelease".into());
        for name in p.components.keys() {
            want.insert(format!("docker://{h}/mirror/openshift/release:{}-{name}", p.tag), "ocpReleaseContent".into());
        }
    }
    want.insert(format!("docker://{h}/{graph_ref}"), "cincinnatiGraph".into());
    let got: BTreeMap<String, String> = items.iter().map(|i| (i.reference.clone(), i.kind.clone())).collect();
    assert_eq!(got, want);
    // Each names the image it stands for: a payload the release the graph serves, a component
    // the image its payload's image-references names.
    for p in &payloads {
        let item = items.iter().find(|i| i.reference.ends_with(&format!("/release-images:{}", p.tag))).unwrap();
        assert_eq!(item.name, served_payload(&p.version), "{item:?}");
        for (name, image) in &p.components {
            let item = items.iter().find(|i| i.reference.ends_with(&format!("/release:{}-{name}", p.tag))).unwrap();
            assert_eq!(&item.name, image, "{item:?}");
        }
    }

    let e = run(execute(&list_path(dir.path(), None), dir.path(), &dest, &[])).ok();
    // Components shared between versions are one manifest: each distinct digest is deleted
    // once, and the other tags of it are found gone or deleted by the same digest.
    let mut distinct: BTreeSet<(String, String)> = BTreeSet::new();
    for p in &payloads {
        distinct.insert(("mirror/openshift/release-images".into(), p.digest.clone()));
        for image in p.components.values() {
            distinct.insert(("mirror/openshift/release".into(), image.rsplit_once('@').unwrap().1.to_string()));
        }
    }
    distinct.insert(("mirror/openshift/graph-image".into(), graph_digest));
    let [deleted, gone, protected, failed, listed] = tally(&e.stdout);
    assert_eq!((protected, failed, listed), (0, 0, want.len()), "{}", e.stdout);
    assert_eq!(deleted + gone, listed, "{}", e.stdout);
    let accepted: Vec<(String, String)> = deletes(&dst)
        .into_iter()
        .filter(|(_, s)| *s == 202)
        .map(|(uri, _)| {
            let (repo, digest) = uri.trim_start_matches("/v2/").split_once("/manifests/").unwrap();
            (repo.to_string(), digest.to_string())
        })
        .collect();
    assert_eq!(accepted.len(), deleted, "the summary counts what the registry accepted: {}", e.stdout);
    assert_eq!(accepted.into_iter().collect::<BTreeSet<_>>(), distinct);
    for reference in want.keys() {
        assert_eq!(digest_at(&dst, &at(&dst, reference)), None, "{reference} is still there");
    }
    // The source is untouched.
    assert_eq!(src.requests("DELETE", ""), 0);
    for p in &payloads {
        assert_eq!(digest_at(&src, &format!("openshift-release-dev/ocp-release:{}", p.tag)).as_ref(), Some(&p.digest));
    }
}

// ---------------------------------------------------------------------------------------------
// Operators.

/// Every `repo:tag` the registry holds, by `_catalog` and each repository's tag list.
fn tagged(reg: &Registry) -> BTreeSet<String> {
    let http = reg.http();
    let get = |path: &str| -> Value {
        let r = http.get(format!("{}/v2/{path}", reg.base_url())).send().unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().unwrap()
    };
    let mut out = BTreeSet::new();
    for repo in get("_catalog?n=1000")["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        for t in get(&format!("{repo}/tags/list"))["tags"].as_array().into_iter().flatten() {
            out.insert(format!("{repo}:{}", t.as_str().unwrap()));
        }
    }
    out
}

#[test]
fn a_package_is_listed_as_bundles_and_related_images_never_its_catalog_and_deleted() {
    use support::opm::{CatalogFixture, fbc_documents};
    let src = Registry::start(logged());
    let dst = Registry::start(logged());
    let cat = CatalogFixture::new("catalogs/test-index", "v1")
        .fbc(shared_data().join("fbc/oc-mirror-test-catalogs/test-catalog-latest"))
        .format(Format::Oci)
        .build(&src);
    let dir = temp_dir("delete-operators-");
    let operators = format!(
        "  operators:\n  - catalog: {}\n    packages:\n    - name: foo\n      minVersion: 0.2.0\n      maxVersion: 0.3.0\n",
        cat.reference
    );
    let (isc, disc) = mirror_and_delete(dir.path(), &operators);
    let dest = format!("docker://{}/mirror", dst.host);
    ok(mirror_to_mirror(isc.to_str().unwrap(), dir.path(), &dest, &[]).output().unwrap());
    let catalog_repo = "mirror/catalogs/test-index";
    let at_dest = tagged(&dst);
    let catalogs: Vec<&String> = at_dest.iter().filter(|r| r.starts_with(&format!("{catalog_repo}:"))).collect();
    assert_eq!(catalogs.len(), 1, "{at_dest:?}");
    let catalog = catalogs[0].clone();
    let catalog_digest = digest_at(&dst, &catalog).unwrap();

    let before = writes(&dst);
    run(generate(&disc, dir.path(), &dest, &[])).ok();
    assert_eq!(writes(&dst), before, "generating wrote to the registry");
    let items = read_list(&list_path(dir.path(), None));
    // Exactly what the mirror put there but the catalog.
    let listed: BTreeSet<String> = items.iter().map(|i| at(&dst, &i.reference)).collect();
    let operator_images: BTreeSet<String> = at_dest.iter().filter(|r| **r != catalog).cloned().collect();
    assert_eq!(listed, operator_images);
    assert!(!items.iter().any(|i| i.name.starts_with(&format!("{}/catalogs/", src.host))), "{items:?}");
    // Bundles are the images the catalog's olm.bundle entries name; the rest are related.
    let bundle_images: BTreeSet<String> = fbc_documents(&cat.configs)
        .iter()
        .filter(|d| d["schema"] == "olm.bundle")
        .map(|d| d["image"].as_str().unwrap().to_string())
        .collect();
    let stand_ins: BTreeSet<&String> = cat.images.values().collect();
    for i in &items {
        assert!(stand_ins.contains(&i.name), "{i:?} names no image of the catalog");
        let kind = if bundle_images.contains(&i.name) { "operatorBundle" } else { "operatorRelatedImage" };
        assert_eq!(i.kind, kind, "{i:?}");
    }
    for kind in ["operatorBundle", "operatorRelatedImage"] {
        assert!(items.iter().any(|i| i.kind == kind), "no {kind} listed: {items:?}");
    }

    let e = run(execute(&list_path(dir.path(), None), dir.path(), &dest, &[])).ok();
    let [deleted, gone, protected, failed, listed_n] = tally(&e.stdout);
    assert_eq!((deleted + gone, protected, failed, listed_n), (items.len(), 0, 0, items.len()), "{}", e.stdout);
    for r in &listed {
        assert_eq!(digest_at(&dst, r), None, "{r} is still there");
    }
    assert_eq!(digest_at(&dst, &catalog), Some(catalog_digest), "the catalog went with its package");
    assert!(!deletes(&dst).iter().any(|(uri, _)| uri.contains("/catalogs/")), "{:?}", deletes(&dst));
}
