//! The `vaultkeep` binary: parse, set up logging, run, exit.

use clap::Parser;
use vaultkeep::cli::{Cli, init_logging, run};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli) {
        eprintln!("vaultkeep: {e:#}");
        return std::process::ExitCode::from(2);
    }
    run(cli)
}
