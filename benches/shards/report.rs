//! The shards benchmark's tables: times with ratios, what the registries saw, the sharded
//! runs' timelines and shards, and the inputs of a scaling model.

use std::fmt::Write as _;

use crate::cases::{Case, Sample, ShardFigures, Timeline};
use crate::workload::Workload;

/// Median and minimum (NaN when empty; NaNs left out).
pub fn median_min(mut v: Vec<f64>) -> (f64, f64) {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let m = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    (m, v[0])
}

fn median(v: Vec<f64>) -> f64 {
    median_min(v).0
}

/// `a` when every value is `a`, else `min–max`.
fn span(v: &[u64]) -> String {
    let (lo, hi) = (v.iter().min().copied().unwrap_or(0), v.iter().max().copied().unwrap_or(0));
    if lo == hi { format!("{lo}") } else { format!("{lo}–{hi}") }
}

fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

/// Seconds, `-` when unknown.
fn s(x: f64) -> String {
    if x.is_nan() { "-".into() } else { format!("{x:.2}") }
}

pub fn report(load: &Workload, cases: &[Case], samples: &[Sample], runs: usize, machine: &str) -> String {
    let mut t = String::new();
    let of = |c: Case| samples.iter().filter(move |s| s.case == c);
    let stats = |c: Case| median_min(of(c).map(|s| s.wall_s).collect());
    let total = load.blob_bytes() as f64;
    let size = load.size;
    let _ = writeln!(
        t,
        "\nshards benchmark: {} images in {} repositories ({} tags each), {} distinct blobs, {:.1} MB (a {:.1} MB base \
         layer in every image, a layer per repository, one per image, a config per image); loopback registries, {runs} \
         run{} per case, order rotating, one unmeasured warm-up round first; every copy into a fresh destination \
         registry, every operator copy by a fresh operator with a fresh cache directory (the shards' cache claim is \
         that directory)\n",
        load.images.len(),
        size.repos,
        size.tags,
        load.blobs.len(),
        mb(total),
        mb(size.base_bytes as f64),
        if runs == 1 { "" } else { "s" },
    );
    let (base_m, _) = stats(Case::Operator(1));
    let (cli_m, _) = stats(Case::Cli);
    let _ = writeln!(t, "| case | median s | min s | MB/s (median) | / operator, shards unset | / CLI |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    for &c in cases {
        let (m, min) = stats(c);
        let _ = writeln!(
            t,
            "| {} | {m:.2} | {min:.2} | {:.1} | {:.2}x | {:.2}x |",
            c.name(),
            mb(total) / m,
            m / base_m,
            m / cli_m
        );
    }
    let _ = writeln!(
        t,
        "\noperator rows: create -> Ready=True, status read every 100 ms; CLI row: spawn -> exit. On 2 CPUs shared by \
         the registries, the API server, etcd, the controller manager and every copying process, more shards mean \
         overhead, not speed-up: the shards compete for the same cores (and, by default, split the operator's 8 \
         request slots per registry, --registry-requests, between them)."
    );

    // What the registries saw.
    let _ = writeln!(
        t,
        "\n| case | source blob GETs | distinct blobs | each blob once | source MB served | manifest GETs | HEADs | \
         destination uploads | destination mounts | digests checked |"
    );
    let _ = writeln!(t, "|---|---:|---:|---|---:|---:|---:|---:|---:|---|");
    let want = load.blobs.len();
    for &c in cases {
        let tr: Vec<_> = of(c).map(|s| &s.traffic).collect();
        let col = |f: &dyn Fn(&crate::cases::Traffic) -> u64| span(&tr.iter().map(|x| f(x)).collect::<Vec<_>>());
        let once = tr.iter().all(|x| x.blob_gets == want && x.distinct == want && x.max_per_blob == 1);
        let worst = tr.iter().map(|x| x.max_per_blob).max().unwrap_or(0);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} of {} images, every run: match |",
            c.name(),
            col(&|x| x.blob_gets as u64),
            col(&|x| x.distinct as u64),
            if once { "yes".to_string() } else { format!("NO (up to {worst} GETs of one blob)") },
            span(&tr.iter().map(|x| (mb(x.bytes as f64)).round() as u64).collect::<Vec<_>>()),
            col(&|x| x.manifest_gets as u64),
            col(&|x| x.heads as u64),
            col(&|x| x.uploads as u64),
            col(&|x| x.mounts as u64),
            load.images.len(),
            load.images.len(),
        );
    }
    let _ = writeln!(
        t,
        "\n(values over the {runs} measured run{}: one figure when every run gave it; the workload has {want} blobs)",
        if runs == 1 { "" } else { "s" }
    );
    let heads = |c: Case| of(c).map(|s| s.traffic.heads).max().unwrap_or(0);
    for &c in cases.iter().filter(|c| matches!(c, Case::Operator(n) if *n > 1)) {
        if heads(c) > heads(Case::Operator(1)) {
            let _ = writeln!(
                t,
                "{}: {} source HEADs against {} in one process: each tag is resolved by the operator's survey and \
                 again by its shard (manifest bodies are still fetched once, through the shared cache)",
                c.name(),
                heads(c),
                heads(Case::Operator(1))
            );
        }
    }

    // Sharded runs.
    let sharded: Vec<Case> = cases.iter().copied().filter(|c| matches!(c, Case::Operator(n) if *n > 1)).collect();
    if sharded.is_empty() {
        let _ = writeln!(t, "{machine}");
        return t;
    }
    let lines = |c: Case| -> Vec<(&Sample, &Timeline)> {
        of(c).filter_map(|s| s.timeline.as_ref().map(|tl| (s, tl))).collect()
    };
    let _ = writeln!(
        t,
        "\nsharded runs, seconds from the image set's create (medians): the Job appears (plan, survey, split, place the \
         shared blobs) -> its first Pod appears (Job controller) -> the first shard process starts (test kubelet: \
         token, volumes, spawn; a real kubelet also schedules and pulls the image) -> the last shard process exits \
         -> the Job is Complete (Job controller) -> Ready=True (the operator reads the Job every second, merges the \
         reports, writes status)\n"
    );
    let _ = writeln!(
        t,
        "| case | create -> Job | Job -> first Pod | first Pod -> first shard running | first -> last shard start | \
         first shard start -> last exit | last exit -> Job Complete | Job Complete -> Ready | create -> Ready |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &c in &sharded {
        let l = lines(c);
        let m = |f: &dyn Fn(&Sample, &Timeline) -> f64| median(l.iter().map(|(s, tl)| f(s, tl)).collect());
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.name(),
            s(m(&|_, tl| tl.job_s)),
            s(m(&|_, tl| tl.first_pod_s - tl.job_s)),
            s(m(&|_, tl| tl.first_start_s - tl.first_pod_s)),
            s(m(&|_, tl| tl.last_start_s - tl.first_start_s)),
            s(m(&|_, tl| tl.last_exit_s - tl.first_start_s)),
            s(m(&|_, tl| tl.complete_s - tl.last_exit_s)),
            s(m(&|s, tl| s.wall_s - tl.complete_s)),
            s(m(&|s, _| s.wall_s)),
        );
    }

    let _ = writeln!(
        t,
        "\nshards (medians over runs, by completion index): MB = bytes of the distinct blobs of the shard's images \
         less those the operator placed before the Job; start-up = process start -> first progress written (request, \
         image set and credentials read through the API); copy = first progress -> report written\n"
    );
    let _ = writeln!(
        t,
        "| case | shard | images | blobs fetched | MB | pod run s | start-up s | copy s | MB/s over pod run | MB/s over \
         copy | pods |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &c in &sharded {
        let l = lines(c);
        let n = l.iter().map(|(_, tl)| tl.shards.len()).max().unwrap_or(0);
        for i in 0..n {
            let sh: Vec<&ShardFigures> =
                l.iter().filter_map(|(_, tl)| tl.shards.iter().find(|x| x.index == i)).collect();
            let m = |f: &dyn Fn(&ShardFigures) -> f64| median(sh.iter().map(|x| f(x)).collect());
            let _ = writeln!(
                t,
                "| {} | {i} | {} | {} | {:.1} | {} | {} | {} | {:.1} | {:.1} | {} |",
                c.name(),
                span(&sh.iter().map(|x| x.images).collect::<Vec<_>>()),
                span(&sh.iter().map(|x| x.blobs_fetched).collect::<Vec<_>>()),
                mb(m(&|x| x.bytes as f64)),
                s(m(&|x| x.run_s)),
                s(m(&|x| x.startup_s)),
                s(m(&|x| x.copy_s)),
                m(&|x| mb(x.bytes as f64) / x.run_s),
                m(&|x| mb(x.bytes as f64) / x.copy_s),
                span(&sh.iter().map(|x| x.attempts as u64).collect::<Vec<_>>()),
            );
        }
    }

    // Model inputs, in the terms of the README's scaling model:
    // T(N) = t_plan + t_survey + t_place + t_job + max over shards (bytes_i / rate_i) + t_tail.
    let _ = writeln!(
        t,
        "\nmodel inputs (medians of this run; MB = 10^6 bytes; T = create -> Ready), for T(N) = t_plan + t_survey + \
         t_place + t_job + max over shards (bytes_i / rate_i) + t_tail:"
    );
    let _ = writeln!(
        t,
        "  single process (N = 1): operator, shards unset: {:.1} MB in {base_m:.2} s = {:.1} MB/s, planning and \
         survey included; CLI: {:.1} MB/s (spawn -> exit, {cli_m:.2} s)",
        mb(total),
        mb(total) / base_m,
        mb(total) / cli_m
    );
    for &c in &sharded {
        let Case::Operator(n) = c else { continue };
        let l = lines(c);
        let m = |f: &dyn Fn(&Sample, &Timeline) -> f64| median(l.iter().map(|(s, tl)| f(s, tl)).collect());
        let longest_copy = |tl: &Timeline| tl.shards.iter().map(|x| x.copy_s).fold(0.0, f64::max);
        let last_report = |tl: &Timeline| tl.shards.iter().map(|x| x.copy_end_s).fold(0.0, f64::max);
        let all: Vec<(&Timeline, &ShardFigures)> =
            l.iter().flat_map(|(_, tl)| tl.shards.iter().map(move |x| (*tl, x))).collect();
        let r_copy = median(all.iter().map(|(_, x)| mb(x.bytes as f64) / x.copy_s).collect());
        let r_pod = median(all.iter().map(|(_, x)| mb(x.bytes as f64) / x.run_s).collect());
        let together = m(&|_, tl| {
            let first = tl.shards.iter().map(|x| x.copy_start_s).fold(f64::INFINITY, f64::min);
            mb(tl.shards.iter().map(|x| x.bytes).sum::<u64>() as f64) / (last_report(tl) - first)
        });
        let first = l.first().map(|(_, tl)| *tl);
        let (placed, placed_bytes, slots) = first.map(|tl| (tl.placed, tl.placed_bytes, tl.slots)).unwrap_or_default();
        let covered = l
            .iter()
            .all(|(_, tl)| tl.shards.iter().map(|x| x.bytes).sum::<u64>() + tl.placed_bytes == load.blob_bytes());
        let _ = writeln!(
            t,
            "  N = {n}: T = {} s; fixed cost F = T - longest shard copy = {} s, made of: t_plan + t_survey + t_place \
             (create -> Job; {placed} shared blob{} of {:.1} MB placed) {} s; t_job (Job -> a shard copying) {} s = \
             Job controller {} s + test kubelet {} s + the shard's API reads {} s; t_tail (last report -> Ready) {} s = \
             Job controller marking the Job Complete {} s + the operator noticing, merging, finishing {} s",
            s(m(&|s, _| s.wall_s)),
            s(m(&|s, tl| s.wall_s - longest_copy(tl))),
            if placed == 1 { "" } else { "s" },
            mb(placed_bytes as f64),
            s(m(&|_, tl| tl.job_s)),
            s(median(all.iter().map(|(tl, x)| x.copy_start_s - tl.job_s).collect())),
            s(m(&|_, tl| tl.first_pod_s - tl.job_s)),
            s(m(&|_, tl| tl.first_start_s - tl.first_pod_s)),
            s(median(all.iter().map(|(_, x)| x.startup_s).collect())),
            s(m(&|s, tl| s.wall_s - last_report(tl))),
            s(m(&|_, tl| tl.complete_s - last_report(tl))),
            s(m(&|s, tl| s.wall_s - tl.complete_s)),
        );
        let _ = writeln!(
            t,
            "    rate_i (per shard, k = {slots} request slots per registry each) = {r_copy:.1} MB/s over its copy \
             ({r_pod:.1} MB/s over its pod's whole run); the {n} shards together {together:.1} MB/s from the first \
             copy start to the last report; bytes_i summed plus placed bytes = every blob: {}",
            if covered { "yes" } else { "NO" }
        );
    }
    let _ = writeln!(
        t,
        "  here every process (registries, API server, etcd, controller manager, operator, shards) shares 2 CPUs and \
         one disk: adding shards adds the fixed cost and lowers rate_i, so expect T(N) > T(1) on this machine. In a \
         cluster the fixed cost is what each sharded run pays (t_job grows with real pod start: scheduling, image \
         pull), and rate_i is what a pod gets where its own node, not the registries or the request cap, is the limit \
         (README: the scaling model)"
    );
    let _ = writeln!(t, "{machine}");
    t
}
