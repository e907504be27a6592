use std::process::ExitCode;

use clap::Parser;

use saaskit::cli::Cli;

/// mimalloc instead of the system allocator: `saaskit new` makes about 100,000 short-lived
/// allocations (syn's token trees, toml_edit's documents), and glibc's malloc and free were a
/// fifth of its instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    exit_quietly_on_closed_stdout();
    let cli = Cli::parse();
    match saaskit::commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            ExitCode::FAILURE
        }
    }
}

/// An error as one line, `error: <what>: <why>: ...` (each context, then its cause); with
/// `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` set, anyhow's report instead: the chain one cause a
/// line, and the backtrace where the error was made.
fn report(error: &anyhow::Error) {
    let debugging = ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE"]
        .iter()
        .any(|key| std::env::var_os(key).is_some_and(|value| value != "0"));
    if debugging {
        eprintln!("error: {error:?}");
    } else {
        eprintln!("error: {error:#}");
    }
}

/// `println!` panics when the reader of stdout has gone (`saaskit new acme --dry-run | head`).
/// Rust ignores SIGPIPE, which would end other tools silently, and resetting it takes `unsafe`;
/// so that panic is turned into the exit status a shell expects after SIGPIPE (128 + 13),
/// without a panic message.
fn exit_quietly_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
}
