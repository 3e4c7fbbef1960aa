//! Errors as callers read them: every `--json` error carries a `kind`, and every
//! kind is documented in README, `--help`, the man page and the JS types.

use std::path::Path;

use serde_json::Value;

use crate::support::{State, fixture_bin, free_port, ocwrap_once};

/// A world-writable directory, an unsafe state dir: a mode only Unix has.
#[cfg(unix)]
fn world_writable_dir(state: &State) -> Option<String> {
    let open = state.tmp().path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    Some(open.to_str().unwrap().to_string())
}

#[cfg(windows)]
fn world_writable_dir(_state: &State) -> Option<String> {
    None
}

#[test]
fn every_json_error_carries_a_kind() {
    let world = State::new();
    let port = free_port().to_string();
    let state = world.arg().to_string();
    let mut cases = vec![
        (
            vec![
                "up",
                "--json",
                "--port",
                &port,
                "--bogus",
                "--",
                fixture_bin(),
                "tree",
                "--exit",
                "0",
            ],
            2,
            "usage",
        ),
        (
            vec![
                "up",
                "--json",
                "--state-dir",
                &state,
                "--port",
                &port,
                "--owner-ancestor",
                "no-such-ancestor",
                "--",
                fixture_bin(),
                "tree",
                "--exit",
                "0",
            ],
            125,
            "no_owner_found",
        ),
        (
            vec!["release", "--json", "--state-dir", &state, "--port", &port],
            1,
            "not_running",
        ),
        (vec!["stop", "--json", "--all", "--name", "x"], 2, "usage"),
    ];
    let open = world_writable_dir(&world);
    if let Some(open) = &open {
        cases.push((
            vec!["status", "--json", "--state-dir", open],
            125,
            "state_dir_unsafe",
        ));
    }
    for (args, code, kind) in cases {
        let (got, out, err) = ocwrap_once(&args);
        assert_eq!(got, code, "{args:?}: {out} {err}");
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
        assert_eq!(v["status"], "error", "{args:?}");
        assert_eq!(v["kind"], kind, "{args:?}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
}

#[test]
fn every_error_kind_is_documented_in_readme_help_man_and_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let types = std::fs::read_to_string(root.join("npm/ocwrap/index.d.ts")).unwrap();
    let (code, man, _) = ocwrap_once(&["man"]);
    assert_eq!(code, 0);
    let (code, help, _) = ocwrap_once(&["--help"]);
    assert_eq!(code, 0);
    for kind in ocwrap::error::kind::ALL {
        assert!(man.contains(kind), "the man page lacks {kind}");
        assert!(help.contains(kind), "--help lacks {kind}");
        assert!(
            readme.contains(&format!("`{kind}`")),
            "README lacks `{kind}`"
        );
        assert!(
            types.contains(&format!("\"{kind}\"")),
            "index.d.ts lacks \"{kind}\""
        );
    }
}
