//! Operating the binary as a new user and an administrator would: what `version` says, log
//! settings refused rather than silently obeyed, messages that say what went wrong and what to
//! do (a plain-HTTP registry reached with TLS, an oc-mirror v1 file), logs without colour codes
//! when they go to a file, and the metrics and words of an operator run.

mod support;

use std::process::Output;
use std::time::Duration;

use imageset_operator::api::ImageSetConfiguration;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::cli::{bin, mirror_to_mirror, ok, write_isc};
use support::cluster;
use support::content::{Format, Pusher};
use support::operator::{OPERATOR, clear_left_behind, finished, operator_as, service_account_kubeconfig_in};
use support::registry::{Registry, RegistryOptions};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Asserts a failure with exit code 1 and one line on stderr containing every `needle`.
fn assert_refused(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err:?}");
    }
    err
}

/// `version` names the version, the commit the binary was built from (one this checkout
/// has, as `git` says) and a build date no later than now.
#[test]
fn version_names_the_commit_and_the_build_date() {
    let out = ok(bin().arg("version").output().unwrap());
    let line = out.trim_end();
    let rest = line
        .strip_prefix(&format!("imageset-operator {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, rest) = rest.split_once(", built ").unwrap_or_else(|| panic!("{line}"));
    let date = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line}"));
    // The tests run in a git checkout: the commit is one git knows.
    assert!(commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    let known = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "cat-file", "-e", &format!("{commit}^{{commit}}")])
        .status()
        .unwrap();
    assert!(known.success(), "{commit} is not a commit of this repository");
    let built: jiff::Timestamp = date.parse().unwrap_or_else(|e| panic!("{date}: {e}"));
    assert!(built <= jiff::Timestamp::now(), "built in the future: {date}");
    assert_eq!(built.to_string(), date, "not RFC 3339 UTC to the second");
}

/// An unknown log level is refused (tracing would read `verbose` as a target name and print
/// nothing, warnings included), as is an unknown log format, naming the variable; both exit
/// 1 like every flag error. A level, or target=level directives, work.
#[test]
fn unknown_log_levels_and_formats_are_refused() {
    let version = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = bin();
        c.env_remove("LOG_LEVEL").env_remove("LOG_FORMAT");
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args).arg("version").output().unwrap()
    };
    assert_refused(&version(&[("LOG_LEVEL", "verbose")], &[]), &["invalid log level \"verbose\"", "LOG_LEVEL"]);
    assert_refused(&version(&[], &["--log-level", "loud"]), &["invalid log level \"loud\"", "--log-level"]);
    assert_refused(&version(&[("LOG_LEVEL", "info,chatty")], &[]), &["\"chatty\" is not a level"]);
    assert_refused(&version(&[("LOG_FORMAT", "yaml")], &[]), &["'yaml'", "environment variable LOG_FORMAT"]);
    let flag = assert_refused(&version(&[], &["--log-format", "yaml"]), &["'yaml'", "--log-format"]);
    assert!(!flag.contains("environment variable"), "{flag}");
    for level in ["WARN", "info,imageset_operator=debug", "off"] {
        ok(version(&[("LOG_LEVEL", level)], &[]));
    }
}

/// A source registry that speaks plain HTTP, reached with TLS verification on (the default):
/// the failure says the registry answered plain HTTP and how to mark it insecure, in Go's
/// words too, instead of rustls' "corrupt message of type InvalidContentType". With the flag,
/// the same mirror succeeds. Logs written to a file carry no colour codes.
#[test]
fn a_plain_http_registry_reached_with_tls_says_how_to_mark_it_insecure() {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let pushed = Pusher::new(&src).image("plain/app", "v1", Format::Oci, ("linux", "amd64"), &[(31, 4096)]);
    let dir = support::temp_dir("ops-plain-http-");
    let isc = write_isc(dir.path(), &[format!("{}/plain/app:{}", src.host, pushed.tag)]);
    let dest = format!("docker://{}/m", dst.host);
    let out = bin()
        .args(["mirror", "-c", &isc, "--workspace", &format!("file://{}", dir.path().join("ws").display()), &dest])
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["--dest-tls-verify=false", "--retry-times=0"])
        .env("LOG_LEVEL", "info")
        .output()
        .unwrap();
    assert!(!out.status.success(), "mirrored over TLS from a plain-HTTP registry");
    let mut text = stderr(&out) + &String::from_utf8_lossy(&out.stdout);
    if let Ok(logs) = std::fs::read_dir(dir.path().join("ws/working-dir/logs")) {
        for f in logs.flatten() {
            text.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
        }
    }
    for needle in [
        "the registry answered plain HTTP",
        "--src-tls-verify=false",
        "spec.registries[].insecure: true",
        "http: server gave HTTP response to HTTPS client",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    // stderr is a pipe here, not a terminal: no escape codes.
    assert!(!text.contains('\u{1b}'), "colour codes in logs that are not a terminal:\n{text}");
    // Marked insecure, it mirrors.
    let out = mirror_to_mirror(&isc, dir.path(), &dest, &[]).env("LOG_LEVEL", "info").output().unwrap();
    let logs = stderr(&out);
    ok(out);
    assert!(!logs.contains('\u{1b}'), "colour codes in logs that are not a terminal:\n{logs}");
}

/// Every oc-mirror v1 image set of the shared data that has a `storageConfig` (v1's storage
/// backend, gone in v2) is refused naming the first unknown field, saying it is a v1 file and
/// what v2 expects; a v2 file with an unknown field gets no such hint.
#[test]
fn oc_mirror_v1_files_are_named_as_such() {
    let root = support::shared_data().join("oc-mirror-configs/v1alpha2");
    let mut v1 = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let text = std::fs::read_to_string(&p).unwrap();
                let lines = || text.lines().map(str::trim_end);
                if lines().any(|l| l == "kind: ImageSetConfiguration")
                    && lines().any(|l| l.starts_with("storageConfig:"))
                {
                    v1.push(p);
                }
            }
        }
    }
    assert!(v1.len() >= 5, "the shared data has few v1 files: {v1:?}");
    let out_dir = support::temp_dir("ops-v1-");
    let mirror = |file: &std::path::Path| {
        let dest = format!("file://{}", out_dir.path().join("out").display());
        bin().args(["mirror", "-c", file.to_str().unwrap(), "--dry-run", &dest]).output().unwrap()
    };
    for f in &v1 {
        assert_refused(
            &mirror(f),
            &["unknown field \"", "oc-mirror v1 file", "apiVersion mirror.openshift.io/v2alpha1 and no storageConfig"],
        );
    }
    // A v2 file with a misspelt field: named, without the v1 hint.
    let v2 = out_dir.path().join("v2.yaml");
    std::fs::write(
        &v2,
        "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalImagez: []\n",
    )
    .unwrap();
    let err = assert_refused(&mirror(&v2), &["unknown field \"mirror.additionalImagez\""]);
    assert!(!err.contains("oc-mirror v1"), "{err}");
}

/// A small operator run: the Ready message counts its cluster objects in words that agree
/// with the number; its events name the pod (POD_NAME) as the reporting instance; /metrics
/// carries build_info with this binary's version line, a last-success timestamp for the image
/// set within the run, the run duration histogram, and the corrected bytes_copied help; the
/// operator's log (a file) has no colour codes.
#[tokio::test]
async fn an_operator_run_reports_in_words_events_and_metrics() {
    let _turn = OPERATOR.lock().await;
    let (src, dst, pushed) = std::thread::spawn(|| {
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let pushed = Pusher::new(&src).image("ops/web", "v1", Format::Oci, ("linux", "amd64"), &[(41, 2048)]);
        (src, dst, pushed)
    })
    .join()
    .unwrap();
    let ns = "ops-words";
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, ns).await;
    let dir = support::temp_dir("ops-operator-");
    let admin = format!("127.0.0.1:{}", support::free_port());
    let kubeconfig = service_account_kubeconfig_in(cp, &client, dir.path(), ns).await;
    let pod = "imageset-operator-7f9c-xk2lp";
    let flags = [format!("--namespace={ns}"), "--retry-times=0".to_string()];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _operator = operator_as(&kubeconfig, dir.path(), &admin, &flags, &[("POD_NAME", pod.to_string())], "operator");
    let set: ImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": "web"},
        "spec": {
            "destination": format!("docker://{}/mirror", dst.host),
            "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
            "mirror": {"additionalImages": [{"name": format!("{}/ops/web:{}", src.host, pushed.tag)}]},
        },
    }))
    .unwrap();
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), ns);
    let _ = api.delete("web", &Default::default()).await;
    let before = jiff::Timestamp::now();
    api.create(&PostParams::default(), &set).await.unwrap();
    let st = finished(&api, "web", 90).await;
    let after = jiff::Timestamp::now();
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True", "{}", ready.message);

    // "N cluster object(s) applied", the noun agreeing with N.
    let msg = &ready.message;
    let at = msg.find(" applied (").unwrap_or_else(|| panic!("no count of applied objects: {msg}"));
    let words: Vec<&str> = msg[..at].rsplit("; ").next().unwrap().split(' ').collect();
    let n: usize = words[0].parse().unwrap_or_else(|_| panic!("{msg}"));
    let noun = words[1..].join(" ");
    assert_eq!(noun, if n == 1 { "cluster object" } else { "cluster objects" }, "{msg}");
    assert!(n >= 1, "a tagged image applies its ImageTagMirrorSet: {msg}");

    // Events name the pod that reported them.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let events = events.list(&Default::default()).await.unwrap().items;
    assert!(!events.is_empty(), "no events");
    for e in &events {
        assert_eq!(e.reporting_instance.as_deref(), Some(pod), "{e:?}");
    }

    // Metrics.
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    let version = ok(bin().arg("version").output().unwrap());
    let commit = version.split("(commit ").nth(1).and_then(|r| r.split(',').next()).unwrap();
    let build = metrics.lines().find(|l| l.starts_with("imageset_operator_build_info{")).expect("build_info");
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build.contains(&format!("commit=\"{commit}\""))
            && build.ends_with("} 1"),
        "{build}"
    );
    let series = format!("imageset_operator_last_success_timestamp_seconds{{namespace=\"{ns}\",name=\"web\"}} ");
    let line = metrics.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("{series}in:\n{metrics}"));
    let secs: f64 = line[series.len()..].parse().unwrap();
    let within = (before.as_millisecond() as f64 / 1e3 - 1.0)..=(after.as_millisecond() as f64 / 1e3 + 1.0);
    assert!(within.contains(&secs), "{secs} not within the run {within:?}");
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("imageset_operator_run_duration_seconds_count "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("run duration count");
    assert!(count >= 1, "{metrics}");
    let inf = metrics
        .lines()
        .find_map(|l| l.strip_prefix("imageset_operator_run_duration_seconds_bucket{le=\"+Inf\"} "))
        .expect("+Inf bucket");
    assert_eq!(inf, count.to_string());
    let help = metrics.lines().find(|l| l.starts_with("# HELP imageset_operator_bytes_copied_total ")).unwrap();
    assert!(!help.contains("received") && help.contains("uploaded"), "{help}");

    // Deleted, its series goes.
    api.delete("web", &Default::default()).await.unwrap();
    let mut gone = false;
    for _ in 0..300 {
        let m = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
        if !m.contains(&series) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the deleted image set's series is still there after 30 s");
    let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap();
    assert!(!log.is_empty() && !log.contains('\u{1b}'), "colour codes in the operator's log file");
}
