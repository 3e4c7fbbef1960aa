//! Finding the Claude Code session a caller runs under: the process that lives as
//! long as the session, for `--owner session` and `ocwrap hook` (docs/DESIGN.md,
//! "The session owner").
//!
//! Claude Code keeps a record of each running session process in
//! `<config>/sessions/<PID>.json` (`<config>` is `$CLAUDE_CONFIG_DIR`, else
//! `~/.claude`), holding its `pid`, its `sessionId` and, where it can read one, its
//! start time (`procStart`, the kernel's unit: on Linux field 22 of
//! `/proc/PID/stat`, the unit of [`StartTime`]). A record is taken only when the
//! process it names is alive now and has that start time, so a record left by a
//! session that crashed never names the process that reused its PID. The rules, in
//! order:
//!
//! 1. the nearest ancestor with a verified record ([`FoundBy::SessionRecord`]);
//! 2. with a session ID (the hook's `session_id`, else `CLAUDE_CODE_SESSION_ID`),
//!    a verified record with that ID, for a caller whose chain of processes is cut
//!    (a detached worker) ([`FoundBy::SessionId`]);
//! 3. the nearest ancestor named `claude` ([`FoundBy::SessionName`]), for a
//!    platform or version whose records carry no start time to verify.
//!
//! Nothing here signals or changes anything; a record that cannot be read, is not a
//! small regular file, or does not parse is passed over.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{self as owner, FoundBy};
use crate::process::{Pid, StartTime};
use crate::sys;

/// The name Claude Code's CLI gives its process (its title, and argv[0]).
pub const PROCESS_NAME: &str = "claude";
/// The environment variable recent Claude Code versions set in hooks and tools.
pub const SESSION_ID_VAR: &str = "CLAUDE_CODE_SESSION_ID";
/// A session record larger than this is not one.
const MAX_RECORD: u64 = 64 * 1024;
/// Records looked at when searching by session ID.
const MAX_RECORDS: usize = 4096;
/// Ancestors looked at, at most (a cycle or a very deep chain ends the walk).
const MAX_DEPTH: usize = 256;

/// A session process, and how it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub pid: Pid,
    pub by: FoundBy,
}

#[derive(Deserialize)]
struct SessionRecord {
    pid: i64,
    #[serde(rename = "sessionId", default)]
    session_id: Option<String>,
    #[serde(rename = "procStart", default)]
    proc_start: Option<serde_json::Value>,
}

/// Where Claude Code keeps its session records, from the environment.
pub fn records_dir() -> Option<PathBuf> {
    let config = match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .or_else(|| std::env::var_os("USERPROFILE").filter(|d| !d.is_empty()))?;
            PathBuf::from(home).join(".claude")
        }
    };
    Some(config.join("sessions"))
}

/// The session process this process runs under, if any (the rules above).
/// `session_id` is the hook's; without one, `CLAUDE_CODE_SESSION_ID` is used.
pub fn find(session_id: Option<&str>) -> Option<Found> {
    let dir = records_dir();
    if let Some(dir) = &dir {
        if let Some(pid) = ancestors().find(|&pid| verified(dir, pid).is_some()) {
            return Some(Found {
                pid,
                by: FoundBy::SessionRecord,
            });
        }
        let env_id = std::env::var(SESSION_ID_VAR).ok();
        let id = session_id.or(env_id.as_deref()).filter(|id| !id.is_empty());
        if let Some(pid) = id.and_then(|id| by_session_id(dir, id)) {
            return Some(Found {
                pid,
                by: FoundBy::SessionId,
            });
        }
    }
    owner::nearest_ancestor(PROCESS_NAME).map(|pid| Found {
        pid,
        by: FoundBy::SessionName,
    })
}

/// This process's ancestors, its parent first, up to the first one that can never
/// exit (init, a kernel thread), which is not included.
fn ancestors() -> impl Iterator<Item = Pid> {
    let mut next = crate::sys::parent_pid();
    let mut seen: Vec<Pid> = Vec::new();
    std::iter::from_fn(move || {
        let pid = next.take()?;
        if owner::immortal(pid).is_some() || seen.contains(&pid) || seen.len() >= MAX_DEPTH {
            return None;
        }
        seen.push(pid);
        next = sys::proc_info(pid).and_then(|info| info.ppid);
        Some(pid)
    })
}

/// The session ID of `pid`'s record when the record names `pid` and `pid` is alive
/// with the start time the record gives.
fn verified(dir: &Path, pid: Pid) -> Option<Option<String>> {
    let record = read_record(&dir.join(format!("{pid}.json")))?;
    (record.pid == i64::from(pid.get()) && start_matches(pid, record.proc_start.as_ref()?))
        .then_some(record.session_id)
}

/// Whether `pid` is alive now and started at `recorded` (a decimal string or a
/// number in the kernel's unit).
fn start_matches(pid: Pid, recorded: &serde_json::Value) -> bool {
    let recorded = match recorded {
        serde_json::Value::String(text) => text.trim().parse::<u64>().ok(),
        serde_json::Value::Number(number) => number.as_u64(),
        _ => None,
    };
    let now = sys::proc_info(pid).filter(|info| info.is_live());
    matches!((recorded, now), (Some(at), Some(info)) if info.start == StartTime(at))
}

/// The live, verified session process whose record carries `id`.
fn by_session_id(dir: &Path, id: &str) -> Option<Pid> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .take(MAX_RECORDS)
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let pid: Pid = name.to_str()?.strip_suffix(".json")?.parse().ok()?;
            Some(pid)
        })
        .find(|&pid| {
            owner::immortal(pid).is_none()
                && verified(dir, pid).is_some_and(|found| found.as_deref() == Some(id))
        })
}

/// A record file: opened without following a symlink or blocking, read only when
/// it is a regular file of at most [`MAX_RECORD`] bytes.
fn read_record(path: &Path) -> Option<SessionRecord> {
    let file = sys::state_entry_options().read(true).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_RECORD {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_RECORD + 1).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(records: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ocwrap-session-test-{}-{}",
            std::process::id(),
            records.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in records {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_record_is_taken_only_with_the_live_process_start_time() {
        let me = Pid::current();
        let start = sys::proc_info(me).unwrap().start.0;
        let good = format!(r#"{{"pid":{me},"sessionId":"s1","procStart":"{start}"}}"#);
        let dir = dir_with(&[(&format!("{me}.json"), &good)]);
        assert_eq!(verified(&dir, me), Some(Some("s1".to_string())));
        // By session ID, never this process itself (it can be no one's owner);
        // the integration suite finds another process by its ID.
        assert_eq!(by_session_id(&dir, "s1"), None);
        for bad in [
            format!(
                r#"{{"pid":{me},"sessionId":"s1","procStart":"{}"}}"#,
                start + 1
            ),
            format!(r#"{{"pid":{me},"sessionId":"s1"}}"#),
            format!(
                r#"{{"pid":{},"sessionId":"s1","procStart":"{start}"}}"#,
                me.get() + 1
            ),
            format!(r#"{{"pid":{me},"procStart":[{start}]}}"#),
            "not json".to_string(),
            String::new(),
        ] {
            std::fs::write(dir.join(format!("{me}.json")), &bad).unwrap();
            assert_eq!(verified(&dir, me), None, "{bad}");
        }
        std::fs::write(
            dir.join(format!("{me}.json")),
            format!(
                r#"{{"pid":{me},"procStart":{start},"pad":"{}"}}"#,
                "x".repeat(70_000)
            ),
        )
        .unwrap();
        assert_eq!(verified(&dir, me), None, "an oversized record is not read");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
