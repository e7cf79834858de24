//! The `vaultkeep` binary: parse, set up logging, run, exit.

use clap::Parser;
use vaultkeep::cli::{Cli, init_logging, run};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    run(cli)
}
