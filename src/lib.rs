//! ocwrap: a launcher that owns a local server's whole process tree and ties its
//! life to the sessions (owners) that need it.
//!
//! Layout: `cli` and `config` (the command line and its validation), `spawn`
//! (starting the server), `owner` and `watch` (leases and how they are watched),
//! `tree` and `teardown` (what belongs to the server and how it is ended),
//! `signals` (the forwarding policy), `lifecycle` and `idle` (the supervisor's
//! rules, as pure state machines), `supervisor` (the event loop tying them
//! together), and `sys` (every `unsafe` block and platform call).

pub mod cli;
pub mod commands;
pub mod config;
pub mod contain;
pub mod control;
pub mod diag;
pub mod duration;
pub mod error;
pub mod exit;
pub mod handoff;
pub mod idle;
pub mod junk;
pub mod lifecycle;
pub mod owner;
pub mod process;
pub mod ready;
pub mod record;
pub mod registration;
pub mod signals;
pub mod spawn;
pub mod state;
pub mod supervisor;
pub mod sys;
pub mod teardown;
pub mod tree;
pub mod watch;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::RunConfig;
use crate::error::Error;

/// Parses the command line, runs the command, and returns the exit code.
pub fn run() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return report(Error::Usage(Box::new(e))),
    };
    let outcome = match cli.command {
        Some(Command::Run(args)) => RunConfig::from_args(args).and_then(supervisor::run),
        None => RunConfig::from_args(cli.run).and_then(supervisor::run),
        Some(Command::Up(args)) => commands::up::run(args),
        Some(Command::Status(args)) => commands::status::run(args),
        Some(Command::Stop(args)) => commands::stop::run(args),
        Some(Command::Release(args)) => commands::release::run(args),
        Some(Command::Gc(args)) => commands::gc::run(args),
        Some(Command::Completions(args)) => commands::completions::run(args.shell),
        Some(Command::Man) => commands::man::run(),
        Some(Command::Supervise) => supervisor::run_handed_off(),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => report(e),
    }
}

fn report(error: Error) -> u8 {
    match &error {
        // clap formats usage errors, --help and --version itself.
        Error::Usage(e) => {
            let _ = e.print();
        }
        _ => diag::say(error::one_line(&error)),
    }
    error.exit_code()
}
