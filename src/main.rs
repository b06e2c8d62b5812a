//! `pkg`: parse the command line, run the command, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // A shell asking for completions (the script `pkg completions SHELL` printed) is answered
    // here, and the process ends.
    clap_complete::CompleteEnv::with_factory(<pkg::cli::Cli as clap::CommandFactory>::command)
        .var(pkg::cli::complete::VAR)
        .complete();
    let cli = match pkg::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A script that asked for JSON gets its document for a usage error too.
            let asked_json = std::env::args_os().skip(1).any(|a| a == "--json");
            if asked_json && e.use_stderr() {
                pkg::commands::print_usage_failure(&e.kind().to_string(), &e.render().to_string());
            }
            e.exit()
        }
    };
    let error = pkg::commands::Stderr::error_label(cli.color);
    if let Err(e) = pkg::interrupt::install() {
        eprintln!(
            "warning: cannot handle Ctrl-C ({e}); an interrupted run is repaired by the next one"
        );
    }
    let json = cli.command.json();
    match pkg::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if json {
                // A script asked for JSON: the failure is a document too.
                pkg::commands::print_failure(&err);
            }
            if let Some(pkg::commands::SilentExit(code)) = err.downcast_ref() {
                return ExitCode::from(*code);
            }
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let causes = pkg::commands::causes(&err);
            let mut causes = causes.iter();
            if let Some(first) = causes.next() {
                eprintln!("{error} {first}");
            }
            for cause in causes {
                eprintln!("  caused by: {cause}");
            }
            // 0 success, 1 failure, 2 usage error or bad input (clap's own code for usage).
            ExitCode::from(pkg::commands::exit_code(&err))
        }
    }
}
