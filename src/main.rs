//! `pkg`: parse the command line, run the command, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

/// Exit codes, in one place: 0 success, 1 failure, 2 usage error (clap's own).
const FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = pkg::cli::Cli::parse();
    if let Err(e) = pkg::interrupt::install() {
        eprintln!(
            "warning: cannot handle Ctrl-C ({e}); an interrupted run is repaired by the next one"
        );
    }
    match pkg::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(pkg::commands::SilentExit(code)) = err.downcast_ref() {
                return ExitCode::from(*code);
            }
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(FAILURE)
        }
    }
}
