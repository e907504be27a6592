use std::process::ExitCode;

use clap::Parser;

use saaskit::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match saaskit::commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
