//! ocwrap: a launcher that owns a local server's whole process tree and ties its
//! life to the sessions (owners) that need it.
//!
//! How the modules are laid out, layer by layer: docs/DESIGN.md, "How the code
//! is laid out".

pub mod cli;
pub mod commands;
pub mod config;
pub mod contain;
pub mod control;
pub mod diag;
pub mod duration;
pub mod error;
pub mod exit;
pub mod guard;
pub mod handoff;
pub mod identity;
pub mod idle;
pub mod lifecycle;
pub mod owner;
pub mod pins;
pub mod process;
pub mod ready;
pub mod signals;
pub mod spawn;
pub mod state;
pub mod supervisor;
pub mod sys;
pub mod teardown;
pub mod time;
pub mod tree;
pub mod watch;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::RunConfig;
use crate::error::Error;

/// Parses the command line, runs the command, and returns the exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let json = asks_for_json(std::env::args_os().skip(1));
            return i32::from(report(Error::Usage(Box::new(e)), json));
        }
    };
    let json = cli.command.as_ref().is_some_and(Command::json);
    let outcome = match cli.command {
        Some(Command::Run(args)) => RunConfig::from_args(args).and_then(supervisor::run),
        None => RunConfig::from_args(cli.run).and_then(supervisor::run),
        Some(Command::Up(args)) => commands::up::run(args).map(i32::from),
        Some(Command::Status(args)) => commands::status::run(args).map(i32::from),
        Some(Command::Stop(args)) => commands::stop::run(args).map(i32::from),
        Some(Command::Release(args)) => commands::release::run(args).map(i32::from),
        Some(Command::Hook(args)) => commands::hook::run(args).map(i32::from),
        Some(Command::Gc(args)) => commands::gc::run(args).map(i32::from),
        Some(Command::Completions(args)) => commands::completions::run(args.shell).map(i32::from),
        Some(Command::Man) => commands::man::run().map(i32::from),
        Some(Command::Supervise) => supervisor::run_handed_off(),
        Some(Command::Guard { args }) => Ok(guard::run(&args)),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => i32::from(report(e, json)),
    }
}

/// Whether a command line clap refused asked for `--json` (before `--`), so that
/// its usage error is one JSON object too.
fn asks_for_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|a| a != "--").any(|a| a == "--json")
}

/// Says what failed on stderr and, with `--json`, as one JSON object on stdout:
/// `{"status":"error","kind":…,"error":…}`.
fn report(error: Error, json: bool) -> u8 {
    let informational = matches!(&error, Error::Usage(e) if e.exit_code() == 0);
    if json && !informational {
        commands::print_json(&serde_json::json!({
            "status": "error",
            "kind": error.kind(),
            "error": error_text(&error),
        }));
    }
    match &error {
        // clap formats usage errors, --help and --version itself.
        Error::Usage(e) => {
            let _ = e.print();
        }
        _ => diag::say(error::one_line(&error)),
    }
    error.exit_code()
}

/// The message of `error` on one line; for a usage error, clap's first line
/// without its `error: ` prefix.
fn error_text(error: &Error) -> String {
    match error {
        Error::Usage(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        }
        _ => error::one_line(error),
    }
}
