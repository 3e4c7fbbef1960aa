//! `ocwrap completions SHELL` and `ocwrap man` (SPEC §2): generated from the one
//! clap definition, so the man page lists every option `--help` lists, each
//! completion script is valid in its shell, and the hidden `__supervise` is in
//! none of them. A shell that is not installed is skipped with a message
//! (`shell/test.sh` installs zsh, fish and groff first).

#[cfg(unix)]
use std::path::Path;
#[cfg(unix)]
use std::process::{Command, Stdio};

#[cfg(unix)]
use crate::support::TempDir;
use crate::support::ocwrap_once;

/// Every command a user can type, and the top level (`""`).
const COMMANDS: [&str; 9] = [
    "",
    "run",
    "up",
    "status",
    "stop",
    "release",
    "gc",
    "completions",
    "man",
];

fn stdout_of(args: &[&str]) -> String {
    let (code, out, err) = ocwrap_once(args);
    assert_eq!(code, 0, "ocwrap {args:?}: {err}");
    out
}

/// The options a help text lists: the `-x`/`--long` words that open its option
/// lines (indented two spaces; their descriptions are indented further).
fn options_in_help(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter(|line| line.starts_with('-'))
        .flat_map(|line| {
            line.split([' ', ','])
                .take_while(|word| word.is_empty() || word.starts_with('-'))
                .filter(|word| word.len() > 1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The man page as text to search: roff's font changes dropped, `\-` made `-`.
fn man_text() -> String {
    stdout_of(&["man"])
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\-", "-")
}

#[test]
fn the_man_page_lists_every_option_and_command_that_help_lists() {
    let man = man_text();
    for command in COMMANDS {
        let args: Vec<&str> = [command, "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let help = stdout_of(&args);
        let options = options_in_help(&help);
        assert!(
            options.contains(&"--help".to_string()),
            "no options read from {args:?}: {help}"
        );
        for option in options {
            assert!(
                lists(&man, &option),
                "ocwrap {command} --help lists {option}, the man page does not"
            );
        }
        if !command.is_empty() {
            assert!(
                man.contains(&format!(".SS \"ocwrap {command}\"")),
                "no section for ocwrap {command}"
            );
        }
    }
}

/// Whether `text` has `option` as a whole word (not as the start of a longer one).
fn lists(text: &str, option: &str) -> bool {
    text.match_indices(option).any(|(at, _)| {
        !text[at + option.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[cfg(unix)] // Unix only: groff, bash, zsh and fish check them
#[test]
fn the_man_page_renders() {
    let tmp = TempDir::new();
    let page = tmp.file("ocwrap.1", &stdout_of(&["man"]));
    // -k: read UTF-8 (preconv), as man(1) does; -ww: every warning; -P-cbou:
    // plain text, no overstriking.
    let Some(render) =
        run_if_installed("groff", &["-k", "-man", "-Tutf8", "-ww", "-P-cbou"], &page)
    else {
        return;
    };
    let (ok, out, err) = render;
    assert!(ok && err.is_empty(), "groff: {err}");
    assert!(out.contains("COMMANDS") && out.contains("idle"), "{out}");
}

#[cfg(unix)] // Unix only: groff, bash, zsh and fish check them
#[test]
fn completion_scripts_are_valid_in_their_shells() {
    let tmp = TempDir::new();
    for (shell, check, args) in [
        ("bash", "bash", &["-n"][..]),
        ("zsh", "zsh", &["-n"][..]),
        ("fish", "fish", &["--no-execute"][..]),
    ] {
        let script = tmp.file(shell, &stdout_of(&["completions", shell]));
        if let Some((ok, _, err)) = run_if_installed(check, args, &script) {
            assert!(ok, "{check} {args:?} on the {shell} completions: {err}");
        }
    }
}

#[test]
fn completions_offer_the_commands_and_options_but_no_hidden_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell]);
        // fish writes `-l idle-timeout`, the others `--idle-timeout`.
        for word in ["up", "release", "completions", "idle-timeout", "owner-pid"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
        assert!(
            !script.contains("__supervise"),
            "{shell} completions offer the hidden __supervise"
        );
    }
    assert!(!stdout_of(&["man"]).contains("__supervise"));
    let (code, _, err) = ocwrap_once(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
}

#[cfg(unix)]
/// Runs `program ARGS… file` if `program` is installed: (success, stdout,
/// stderr). Otherwise says it skipped and returns `None`.
fn run_if_installed(program: &str, args: &[&str], file: &Path) -> Option<(bool, String, String)> {
    match Command::new(program)
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => Some((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: {program} is not installed (shell/test.sh installs it)");
            None
        }
        Err(e) => panic!("running {program}: {e}"),
    }
}
