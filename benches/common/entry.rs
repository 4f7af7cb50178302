//! The entry point every benchmark shares: `--<child flag>` re-enters the binary as the
//! measured child process (so its peak RSS is the measurement's alone), and without
//! `--bench` (a test run of all targets) nothing heavy starts. Also the option parsing, the
//! cache and scratch directories, the load average and the plain process measurement the
//! benches share (the copy and delete benches' GNU time watchdog is in `measure.rs`).
// Each bench uses a different part.
#![allow(dead_code)]

/// Dispatches to the child, the benchmark, or a hint.
pub fn main(name: &str, child_flag: &str, child: fn(&[String]) -> i32, run: fn(&[String]) -> anyhow::Result<()>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(child_flag) {
        std::process::exit(child(&args[1..]));
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("{name} benchmark: run it with scripts/bench-{name} or cargo bench --bench {name}");
        return;
    }
    if let Err(e) = run(&args) {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

/// `--key value` / `--key=value` pairs, in order (`--bench`, which cargo passes to every
/// bench binary, is dropped).
pub fn flags(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    use anyhow::{Context as _, bail};
    let mut given: Vec<(String, String)> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else { bail!("unexpected argument {a:?}") };
        match flag.split_once('=') {
            _ if flag == "bench" => {}
            Some((k, v)) => given.push((k.into(), v.into())),
            None => given.push((flag.into(), it.next().with_context(|| format!("--{flag} needs a value"))?.clone())),
        }
    }
    Ok(given)
}

/// The options a bench was given: `--key value` / `--key=value` pairs, each also settable
/// through an environment variable.
pub struct Given(Vec<(String, String)>);

impl Given {
    /// Reads `args` (see [`flags`]); an option not among `known` is an error.
    pub fn parse(args: &[String], known: &[&str]) -> anyhow::Result<Given> {
        let given = flags(args)?;
        if let Some((k, _)) = given.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            anyhow::bail!("unknown option --{k} (known: --{})", known.join(", --"));
        }
        Ok(Given(given))
    }

    /// The last `--key` given, else `env`; an empty value is no value.
    pub fn get_or_env(&self, key: &str, env: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(env).ok())
            .filter(|v| !v.is_empty())
    }

    /// The last `--key` given, else `BENCH_KEY` (upper case, `-` as `_`).
    pub fn get(&self, key: &str) -> Option<String> {
        self.get_or_env(key, &format!("BENCH_{}", key.to_uppercase().replace('-', "_")))
    }

    /// [`Given::get`] as a number, `default` when not given.
    pub fn num(&self, key: &str, default: u64) -> anyhow::Result<u64> {
        use anyhow::Context as _;
        self.get(key).map(|v| v.parse().with_context(|| format!("{key}: {v:?} is not a number"))).unwrap_or(Ok(default))
    }

    /// `--bin PATH`, else `BENCH_IMAGESET_BIN`, else the release binary cargo built with the
    /// bench.
    pub fn bin(&self) -> std::path::PathBuf {
        self.get_or_env("bin", "BENCH_IMAGESET_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_imageset-operator")))
    }
}

/// `--runs N` and `--bin PATH` (as `--key value` or `--key=value`, else `BENCH_RUNS` and
/// `BENCH_IMAGESET_BIN`), the options of the benches that drive the built binary.
pub fn runs_and_bin(args: &[String]) -> anyhow::Result<(usize, std::path::PathBuf)> {
    let given = Given::parse(args, &["runs", "bin"])?;
    Ok((given.num("runs", 3)?.max(1) as usize, given.bin()))
}

/// The bench cache: `BENCH_CACHE`, else `imageset-operator-bench` in `$XDG_CACHE_HOME` or
/// `~/.cache`.
pub fn cache_root() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(d) = std::env::var_os("BENCH_CACHE") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache"))
        .join("imageset-operator-bench")
}

/// A scratch directory named `prefix...` under `BENCH_TMPDIR`, else the system temp
/// directory; removed when dropped.
pub fn scratch_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let base = std::env::var_os("BENCH_TMPDIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    Ok(tempfile::Builder::new().prefix(prefix).tempdir_in(&base)?)
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Runs `argv` to completion under GNU time when `time` is given; returns wall seconds, peak
/// RSS in KiB (GNU time's `%M`) and stdout. A failure is an error with the output.
pub fn measure(
    time: Option<&std::path::Path>,
    argv: &[String],
    env: &[(&str, &str)],
) -> anyhow::Result<(f64, Option<u64>, String)> {
    use anyhow::{Context as _, bail};
    use std::process::{Command, Stdio};
    let timefile = tempfile::NamedTempFile::new()?;
    let mut cmd = match time {
        Some(time) => {
            let mut c = Command::new(time);
            c.args(["-f", "%M", "-o"]).arg(timefile.path()).args(argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.env_remove("OC_MIRROR_CACHE").env_remove("REGISTRY_AUTH_FILE").envs(env.iter().copied());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = std::time::Instant::now();
    let out = cmd.spawn().with_context(|| format!("start {}", argv[0]))?.wait_with_output()?;
    let wall = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}{}",
            argv[0],
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rss = time.and_then(|_| {
        let text = std::fs::read_to_string(timefile.path()).ok()?;
        text.lines().last()?.trim().parse().ok()
    });
    Ok((wall, rss, String::from_utf8_lossy(&out.stdout).into_owned()))
}
