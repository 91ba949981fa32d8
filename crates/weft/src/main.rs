//! The one weft binary. With any of the CNI variables set it is the CNI plugin, and does
//! nothing else first: no argument parsing, no runtime, so a pod's ADD costs only what it
//! must. (Any of them, not only `CNI_COMMAND`: a runtime that forgot `CNI_COMMAND` gets
//! the spec's error object, not a usage text it cannot read.)

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "weft", version, about = "weft: a pod network")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Clusters of network namespaces on this machine (not built yet).
    Lab {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    const CNI_VARIABLES: [&str; 6] =
        ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH", "CNI_ARGS"];
    if CNI_VARIABLES.iter().any(|name| std::env::var_os(name).is_some()) {
        let outcome = weft_cni::run_from_process();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(outcome.stdout.as_bytes());
        let _ = stdout.flush();
        return ExitCode::from(outcome.exit_code as u8);
    }
    match Cli::parse().command {
        Commands::Lab { .. } => {
            eprintln!(
                "weft lab: not built yet. The lab (clusters of namespaces, `weft lab demo`) \
                 arrives with the agent; today weft is the CNI plugin: see README.md."
            );
            ExitCode::SUCCESS
        }
    }
}
