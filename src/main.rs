//! The `tarsier` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use tarsier::cli::{Cli, Command};

fn main() -> ExitCode {
    tarsier::tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => tarsier::app::check_config(&file),
        Command::TestRules { files, run, ignore_unknown_fields } => {
            tarsier::app::test_rules(&files, alerting::promtool::TestOptions { run, ignore_unknown_fields })
        }
        Command::Snapshot { server_url, out, keep, keep_on_server, bearer_token_file } => {
            tarsier::snapshot::main(tarsier::snapshot::SnapshotOptions {
                server_url,
                out,
                keep,
                keep_on_server,
                bearer_token_file,
            })
        }
        Command::Run(args) => tarsier::app::main(tarsier::app::Role::Run, args),
        Command::Server(args) => tarsier::app::main(tarsier::app::Role::Server, args),
        Command::Agent(args) => tarsier::app::main(tarsier::app::Role::Agent, args),
    }
}
