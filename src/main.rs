//! Entry point: parse arguments, start logging, dispatch. No logic here.
#![forbid(unsafe_code)]

use clap::Parser;
use imageset_operator::cli::{Cli, Command, Env};
use imageset_operator::{commands, telemetry};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            eprintln!("imageset-operator: {}", telemetry::one_line_clap_error(&e, |var| std::env::var(var).ok()));
            // oc-mirror exits 1 on flag errors; 2 is its release-error bit, which scripts read.
            std::process::exit(1);
        }
    };
    if let Err(e) = telemetry::init(cli.log_format, &cli.log_level) {
        // A flag error, like clap's: exit 1.
        eprintln!("imageset-operator: error: {e}");
        std::process::exit(1);
    }
    let env = Env::from_process();
    let result = match cli.command {
        Command::Crd => {
            print!("{}", imageset_operator::api::crds_yaml());
            Ok(())
        }
        Command::Version => {
            println!("{}", telemetry::version_line());
            Ok(())
        }
        Command::Mirror(args) => commands::mirror::run(&args, &env).map(print_lines),
        Command::Delete(args) => commands::delete::run(&args, &env).map(print_lines),
        Command::List(cmd) => commands::list::run(&cmd, &env).map(print_lines),
        Command::Cache(cmd) => commands::cache::run(&cmd, &env).map(print_lines),
        Command::Shard(f) => {
            imageset_operator::controller::shard_worker::run(&f).map(print_lines).map_err(commands::CliError::Setup)
        }
        Command::Run(args) => imageset_operator::controller::run(args).map_err(|e| commands::CliError::Setup(e.0)),
    };
    if let Err(e) = result {
        eprintln!("imageset-operator: error: {e}");
        std::process::exit(e.exit_code());
    }
}

fn print_lines(lines: Vec<String>) {
    for l in lines {
        println!("{l}");
    }
}
