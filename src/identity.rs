//! The identities ocwrap passes between its parts, each with one text form
//! (`Display` and `FromStr`): a supervisor's [`Name`] and the state-dir [`Stem`]
//! every name is, a supervisor's and a
//! server's identity ([`SupervisorId`], [`ServerId`]), and the [`TreeMarker`]
//! every process of a server's tree inherits (docs/DESIGN.md, "Records and
//! locks" and "Containment").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::process::{Pid, ProcInfo, StartTime};
use crate::sys;

/// A supervisor's name, checked once where it enters (the command line, a record):
/// `[A-Za-z0-9._-]{1,64}`, not starting with `.`. It names the registration's files
/// (`<name>.lock`, …), so it can never be a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(Stem);

impl Name {
    /// For clap and serde: the name, or why it is not one.
    pub fn parse(text: &str) -> Result<Name, String> {
        if valid_name(text) {
            Ok(Name(Stem(text.to_string())))
        } else {
            Err(format!(
                "'{text}' is not a name: use [A-Za-z0-9._-]{{1,64}}, not starting with '.'"
            ))
        }
    }

    /// The name a `--port P` supervisor gets.
    pub fn of_port(port: u16) -> Name {
        Name(Stem(format!("port-{port}")))
    }

    /// The name a `--socket PATH` supervisor gets: `sock-<last component>-<hash>`,
    /// the component cut to 40 characters of `[A-Za-z0-9._-]` (others become
    /// `_`), and the hash (FNV-1a, 32 bits, in hex) of the whole path, so that two
    /// sockets of one file name in two directories get two names.
    pub fn of_socket(path: &str) -> Name {
        let last = path
            .rsplit(['/', '\\'])
            .find(|part| !part.is_empty())
            .unwrap_or("");
        let shown: String = last
            .chars()
            .take(40)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = path.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        Name(Stem(format!("sock-{shown}-{hash:08x}")))
    }

    /// The name of an unnamed supervisor: `pid-<its pid>`.
    pub fn unnamed(pid: Pid) -> Name {
        Name(Stem(format!("pid-{pid}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0.0
    }

    /// The stem of this name's files in the state dir.
    pub fn stem(&self) -> &Stem {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Name {
    type Error = String;

    fn try_from(text: String) -> Result<Name, String> {
        Name::parse(&text)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0.0
    }
}

/// The part of a state-dir entry's name before its extension (`<stem>.lock`,
/// `<stem>.json`, …): every [`Name`] is one ([`Name::stem`]), and so is what a
/// listing of the state dir finds there ([`Stem::listed`]), which a foreign or
/// hostile file may have made and which need not be a valid name (`gc` and
/// `status` still speak of it). Every path `state` makes takes a stem, so none is
/// built from text with a path separator in it, or from `.`, `..` or nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Stem(String);

impl Stem {
    /// The stem of an entry named `<text>.<ext>` that a listing found: `None` for
    /// an empty one, one starting with `.` (hidden, `.`/`..`) or one holding this
    /// platform's path separator or a NUL (which no listing gives).
    pub fn listed(text: &str) -> Option<Stem> {
        let plain = !text.is_empty()
            && !text.starts_with('.')
            && !text
                .chars()
                .any(|c| c == '\0' || std::path::is_separator(c));
        plain.then(|| Stem(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name this stem is, if it is a valid one.
    pub fn name(&self) -> Option<Name> {
        Name::parse(&self.0).ok()
    }
}

impl std::ops::Deref for Stem {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Stem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<Stem> for Stem {
    fn as_ref(&self) -> &Stem {
        self
    }
}

impl AsRef<Stem> for Name {
    fn as_ref(&self) -> &Stem {
        self.stem()
    }
}

impl From<&Name> for Stem {
    fn from(name: &Name) -> Stem {
        name.stem().clone()
    }
}

/// Whether `name` is a valid `--name`: `[A-Za-z0-9._-]{1,64}`, and not `.`/`..`-like.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A supervisor: its PID and its start time, which together name one process for
/// its whole life (a PID alone may be reused). Its text form is `<pid>.<start>`,
/// the value of its [`TreeMarker`], the suffix of its cgroup's name and the first
/// line of its lock's claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorId {
    pub pid: Pid,
    pub start: StartTime,
}

impl SupervisorId {
    /// This process, or `None` if its own start time cannot be read.
    pub fn current() -> Option<SupervisorId> {
        let pid = Pid::current();
        sys::proc_info(pid).map(|info| SupervisorId {
            pid,
            start: info.start,
        })
    }

    /// Whether this supervisor runs: its PID shows a live process with the same
    /// start time. A look that failed (out of descriptors, say) proves nothing and
    /// counts as running, so nothing is swept or killed on its account.
    pub fn is_running(&self) -> bool {
        match sys::proc_lookup(self.pid) {
            Ok(info) => info.is_some_and(|p| p.is_live() && p.start == self.start),
            Err(_) => true,
        }
    }

    /// The marker this supervisor's server tree carries.
    pub fn marker(self) -> TreeMarker {
        TreeMarker(self)
    }
}

impl fmt::Display for SupervisorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.pid, self.start.0)
    }
}

impl FromStr for SupervisorId {
    type Err = String;

    fn from_str(text: &str) -> Result<SupervisorId, String> {
        let parsed = text.split_once('.').and_then(|(pid, start)| {
            Some(SupervisorId {
                pid: pid.parse().ok()?,
                start: StartTime(digits(start)?),
            })
        });
        parsed.ok_or_else(|| format!("'{text}' is not a supervisor's <pid>.<start time>"))
    }
}

/// A decimal number of plain ASCII digits (no sign, no space, no `+`).
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The server a supervisor started: its PID, its process group (the same PID: it
/// leads its own group), and its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerId {
    pub pid: Pid,
    pub pgid: Pid,
    pub start: StartTime,
}

/// The environment entry `OCWRAP_TREE=<supervisor id>` that every process of a
/// supervisor's server tree inherits. The sweep and `gc` use it to recognise the
/// leftovers of a dead supervisor, whose start times are not in any record
/// (grandchildren, escapees); a server's cgroup is named `ocwrap-<supervisor id>`
/// after it, so a leftover cgroup says whose it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeMarker(pub SupervisorId);

impl TreeMarker {
    /// The environment variable's name.
    pub const KEY: &str = "OCWRAP_TREE";

    /// What the variable is set to: the supervisor's ID.
    pub fn value(&self) -> String {
        self.0.to_string()
    }

    /// The name of the cgroup of this supervisor's server.
    pub fn cgroup_name(&self) -> String {
        format!("ocwrap-{}", self.0)
    }

    /// The supervisor whose server's cgroup has this name, if it is one.
    pub fn of_cgroup_name(name: &str) -> Option<TreeMarker> {
        let id = name.strip_prefix("ocwrap-")?.parse().ok()?;
        Some(TreeMarker(id))
    }
}

impl TreeMarker {
    /// Every live process that carries this marker, found by reading the
    /// environment of each process on the host (one scan: for a dead
    /// supervisor's leftovers, and where no child subreaper keeps the tree
    /// below its supervisor, at teardown's known moments). `except` (the
    /// caller, a supervisor's guard) is never among them.
    pub fn carriers(&self, except: &[Pid]) -> Vec<ProcInfo> {
        let entry = self.to_string();
        carriers_in(sys::all_processes(), self.0.start, except, |pid| {
            sys::environ_has(pid, &entry)
        })
    }

    /// Whether `pid` is a live process that carries this marker (one read).
    pub fn is_carried_by(&self, pid: Pid) -> bool {
        let entry = self.to_string();
        sys::proc_info(pid)
            .is_some_and(|p| carries(&p, self.0.start, |pid| sys::environ_has(pid, &entry)))
    }
}

/// Whether `p` is live, started no earlier than the supervisor (`born_after`), and
/// carries a marker (`has_marker`): a process older than the supervisor cannot be
/// of its tree, whatever its environment says (it inherited the text, or wrote
/// it).
fn carries(p: &ProcInfo, born_after: StartTime, has_marker: impl Fn(Pid) -> bool) -> bool {
    p.is_live() && p.start >= born_after && has_marker(p.pid)
}

/// The processes of `snapshot` not in `except` that [`carries`] a marker.
fn carriers_in(
    snapshot: Vec<ProcInfo>,
    born_after: StartTime,
    except: &[Pid],
    has_marker: impl Fn(Pid) -> bool,
) -> Vec<ProcInfo> {
    snapshot
        .into_iter()
        .filter(|p| !except.contains(&p.pid) && carries(p, born_after, &has_marker))
        .collect()
}

/// The whole environment entry, `OCWRAP_TREE=<pid>.<start>`.
impl fmt::Display for TreeMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", TreeMarker::KEY, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_path_names_its_supervisor_safely_and_distinctly() {
        let a = Name::of_socket("/tmp/cxc-1/broker.sock");
        let b = Name::of_socket("/tmp/cxc-2/broker.sock");
        assert!(a.starts_with("sock-broker.sock-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, Name::of_socket("/tmp/cxc-1/broker.sock"));
        for odd in [
            "/",
            "",
            "/run/a b/\u{fc}n\u{ef} c\u{f6}d\u{e9}\n",
            r"\\.\pipe\codex broker",
        ] {
            let name = Name::of_socket(odd);
            assert!(Name::parse(&name).is_ok(), "{odd:?} gave {name}");
        }
        let long = format!("/{}", "x".repeat(200));
        assert!(Name::of_socket(&long).len() <= 64);
    }

    #[test]
    fn names_follow_the_spec_pattern() {
        assert!(valid_name("port-4096"));
        assert!(valid_name("a.b_c-D9"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"x".repeat(65)));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".."));
        assert!(!valid_name("white space"));
    }

    #[test]
    fn a_supervisor_id_reads_what_it_writes_and_nothing_else() {
        let id = SupervisorId {
            pid: Pid::new(42).unwrap(),
            start: StartTime(777),
        };
        assert_eq!(id.to_string(), "42.777");
        assert_eq!("42.777".parse::<SupervisorId>(), Ok(id));
        for bad in [
            "", "42", "42.", ".777", "42 777", "42.+7", "0.7", "-1.7", "42.7.7", "4 2.7",
        ] {
            assert!(bad.parse::<SupervisorId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_listed_stem_is_never_a_path_and_a_name_is_a_stem() {
        for bad in ["", ".", "..", ".hidden", "a/b", "/abs", "nul\0"] {
            assert_eq!(Stem::listed(bad), None, "{bad:?}");
        }
        // Not a name, but what a listing may find: kept, for gc and status.
        let foreign = Stem::listed("two words").unwrap();
        assert_eq!(foreign.as_str(), "two words");
        assert_eq!(foreign.name(), None);
        let name = Name::parse("api").unwrap();
        assert_eq!(Stem::listed("api").as_ref(), Some(name.stem()));
        assert_eq!(name.stem().name(), Some(name.clone()));
        assert_eq!(serde_json::to_string(name.stem()).unwrap(), "\"api\"");
    }

    #[test]
    fn carriers_are_live_marked_processes_born_after_the_supervisor_and_never_the_excepted() {
        use crate::process::RunState;
        let info = |pid: i32, start: u64, state: RunState| ProcInfo {
            pid: Pid::new(pid).unwrap(),
            ppid: Pid::new(1),
            pgid: None,
            sid: None,
            start: StartTime(start),
            state,
        };
        let snapshot = vec![
            info(10, 500, RunState::Live), // marked, born after: a carrier
            info(11, 499, RunState::Live), // marked, but older than the supervisor
            info(12, 600, RunState::Dead), // marked, but a zombie
            info(13, 600, RunState::Live), // unmarked
            info(14, 700, RunState::Live), // marked, but the guard
            info(15, 800, RunState::Live), // marked, born after: a carrier
        ];
        let marked = |pid: Pid| pid.get() != 13;
        let found: Vec<i32> =
            carriers_in(snapshot, StartTime(500), &[Pid::new(14).unwrap()], marked)
                .iter()
                .map(|p| p.pid.get())
                .collect();
        assert_eq!(found, [10, 15]);
    }

    #[test]
    fn the_marker_names_the_variable_and_the_cgroup() {
        let id = SupervisorId {
            pid: Pid::new(42).unwrap(),
            start: StartTime(777),
        };
        let marker = id.marker();
        assert_eq!(marker.to_string(), "OCWRAP_TREE=42.777");
        assert_eq!(marker.value(), "42.777");
        assert_eq!(marker.cgroup_name(), "ocwrap-42.777");
        assert_eq!(TreeMarker::of_cgroup_name("ocwrap-42.777"), Some(marker));
        assert_eq!(TreeMarker::of_cgroup_name("ocwrap-42"), None);
        assert_eq!(TreeMarker::of_cgroup_name("other-42.777"), None);
    }
}
