//! Validation: raw command-line flags become a [`RunConfig`] whose every field is
//! known good, before anything has a side effect. Combinations clap cannot judge on
//! its own (for example `--owner none` beside an owner PID, possibly from the
//! environment) are usage errors here.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory;
use clap::error::ErrorKind;

use crate::cli::{Cli, OwnerMode, RunArgs, StdinMode, WatchMethodArg};
use crate::error::Error;
use crate::process::Pid;

/// Who owns the server: the leases ocwrap starts with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnerSpec {
    /// ocwrap's parent is an owner.
    pub parent: bool,
    /// These PIDs are owners.
    pub pids: Vec<Pid>,
    /// The nearest ancestor with this name is an owner.
    pub ancestor: Option<String>,
}

impl OwnerSpec {
    pub fn is_none(&self) -> bool {
        !self.parent && self.pids.is_empty() && self.ancestor.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub owners: OwnerSpec,
    pub grace: Duration,
    pub linger: Duration,
    pub log: Option<PathBuf>,
    pub session: bool,
    pub stdin: StdinMode,
    pub watch_method: WatchMethodArg,
    pub verbose: bool,
    pub program: OsString,
    pub args: Vec<OsString>,
}

impl RunConfig {
    pub fn from_args(raw: RunArgs) -> Result<RunConfig, Error> {
        let owners = owner_spec(&raw)?;
        if let Some(name) = raw
            .owner_ancestor
            .as_ref()
            .filter(|n| n.is_empty() || n.contains('/'))
        {
            return Err(usage(
                ErrorKind::InvalidValue,
                format!("--owner-ancestor takes a process name, not '{name}'"),
            ));
        }
        let mut command = raw.command.into_iter();
        let program = command
            .next()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| usage(ErrorKind::InvalidValue, "COMMAND must not be empty".into()))?;
        Ok(RunConfig {
            owners,
            grace: raw.grace,
            linger: raw.linger,
            log: raw.log,
            session: raw.session,
            stdin: raw.stdin,
            watch_method: raw.watch_method,
            verbose: raw.verbose,
            program,
            args: command.collect(),
        })
    }
}

fn owner_spec(raw: &RunArgs) -> Result<OwnerSpec, Error> {
    let explicit = !raw.owner_pids.is_empty() || raw.owner_ancestor.is_some();
    match raw.owner {
        Some(OwnerMode::None) if explicit => Err(usage(
            ErrorKind::ArgumentConflict,
            "--owner none cannot be combined with --owner-pid or --owner-ancestor".into(),
        )),
        Some(OwnerMode::None) => Ok(OwnerSpec::default()),
        mode => Ok(OwnerSpec {
            parent: mode == Some(OwnerMode::Parent) || !explicit,
            pids: raw.owner_pids.clone(),
            ancestor: raw.owner_ancestor.clone(),
        }),
    }
}

fn usage(kind: ErrorKind, message: String) -> Error {
    Error::Usage(Box::new(Cli::command().error(kind, message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<RunConfig, Error> {
        let cli = Cli::try_parse_from(args).map_err(|e| Error::Usage(Box::new(e)))?;
        RunConfig::from_args(cli.run)
    }

    #[test]
    fn parent_is_the_owner_only_when_no_other_is_given() {
        let c = parse(&["ocwrap", "--", "true"]).unwrap();
        assert_eq!(
            c.owners,
            OwnerSpec {
                parent: true,
                ..OwnerSpec::default()
            }
        );
        let c = parse(&["ocwrap", "--owner-pid", "42", "--", "true"]).unwrap();
        assert!(!c.owners.parent);
        assert_eq!(c.owners.pids, [Pid::new(42).unwrap()]);
        let c = parse(&[
            "ocwrap",
            "--owner",
            "parent",
            "--owner-pid",
            "42",
            "--",
            "true",
        ])
        .unwrap();
        assert!(c.owners.parent);
        let c = parse(&["ocwrap", "--owner", "none", "--", "true"]).unwrap();
        assert!(c.owners.is_none());
    }

    #[test]
    fn conflicting_or_empty_values_are_usage_errors() {
        for args in [
            &[
                "ocwrap",
                "--owner",
                "none",
                "--owner-pid",
                "42",
                "--",
                "true",
            ][..],
            &["ocwrap", "--owner-ancestor", "a/b", "--", "true"],
            &["ocwrap", "--", ""],
            &["ocwrap", "--grace", "soon", "--", "true"],
            &["ocwrap", "--owner-pid", "0", "--", "true"],
            &["ocwrap", "true"],
            &["ocwrap"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?} should fail"));
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{args:?}");
        }
    }

    #[test]
    fn run_subcommand_takes_the_same_options() {
        let cli =
            Cli::try_parse_from(["ocwrap", "run", "--grace", "1s", "--", "sh", "-c", "x"]).unwrap();
        let Some(crate::cli::Command::Run(args)) = cli.command else {
            panic!("expected the run subcommand");
        };
        let c = RunConfig::from_args(args).unwrap();
        assert_eq!(c.grace, Duration::from_secs(1));
        assert_eq!(c.program, "sh");
        assert_eq!(c.args, ["-c", "x"]);
    }
}
