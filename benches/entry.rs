//! The entry point every benchmark shares: `--<child flag>` re-enters the binary as the
//! measured child process (so its peak RSS is the measurement's alone), and without
//! `--bench` (a test run of all targets) nothing heavy starts.

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
