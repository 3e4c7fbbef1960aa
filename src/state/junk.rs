//! Junk: an entry under one of a registration's names that ocwrap did not make and
//! cannot use there, and how `gc` clears it (docs/DESIGN.md, "Records and locks").
//!
//! A lock, a record and `up`'s turn lock are regular files; anything else under
//! their names (a directory, a FIFO, a socket, a symlink, a device) keeps the name
//! from being taken or recorded until it goes. Under the control socket's name only
//! a directory does: whatever else is there, binding the socket replaces.
//!
//! Clearing (what `gc` does to each entry under the names it cleans, junk or not)
//! never follows a symlink (the link itself is removed), never descends into a
//! directory and never leaves the state dir. A directory is removed if it is empty
//! (it is listed only to see that); otherwise it is renamed, beside itself, to a
//! name that no registration uses (`<entry>.moved-aside`), so that the name is free
//! again and whatever is in the directory (perhaps another user's files) is neither
//! opened nor lost. The sweep every command runs first does none of this: only
//! `gc` clears junk, and says what became of each entry.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::sys::{self, FileId};

/// How many names `<entry>.moved-aside`, `…-2`, … a directory may be moved to. Past
/// that, the last is tried, and the rename fails rather than replace anything but
/// an empty directory.
const ASIDE_NAMES: u32 = 100;

/// What ocwrap keeps under a name, to say what a piece of junk is in the way of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Lock,
    Socket,
    Turn,
}

impl Role {
    fn noun(self) -> &'static str {
        match self {
            Role::Lock => "the name's lock",
            Role::Socket => "the control socket",
            Role::Turn => "up's turn lock",
        }
    }
}

/// What is at `path`, in words, when it is junk there for `role`; `None` when
/// nothing is there or what is there can serve.
pub fn in_the_way(path: &Path, role: Role) -> Option<&'static str> {
    let meta = fs::symlink_metadata(path).ok()?;
    let junk = match role {
        Role::Socket => meta.is_dir(),
        Role::Lock | Role::Turn => !meta.is_file(),
    };
    junk.then(|| sys::file_kind(&meta))
}

/// `kind` under `role`'s name, in words: "a directory where the name's lock belongs".
pub fn describe(kind: &str, role: Role) -> String {
    format!("{kind} where {} belongs", role.noun())
}

/// `Err` saying what is in the way at `path` (and that `gc` clears it), when junk
/// is there for `role`.
pub fn ensure_clear(path: &Path, role: Role) -> Result<(), Error> {
    match in_the_way(path, role) {
        Some(kind) => Err(Error::InTheWay {
            path: path.to_path_buf(),
            what: describe(kind, role),
        }),
        None => Ok(()),
    }
}

/// For a failure to take or make the file at `path`: the error saying that junk is
/// in the way, when it is; else `what` failed.
pub fn in_the_way_or(
    path: &Path,
    role: Role,
    what: &'static str,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| match ensure_clear(&path, role) {
        Err(in_the_way) => in_the_way,
        Ok(()) => Error::os(what)(source),
    }
}

/// What clearing an entry does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Unlink it (a symlink itself, never what it points to), or remove the
    /// directory, which is empty.
    Remove,
    /// Rename the directory, which is not empty, to this path beside it.
    MoveAside(PathBuf),
}

/// An entry found at a path, and what clearing it does.
#[derive(Debug)]
pub struct Entry {
    pub path: PathBuf,
    /// What it is, in words ("a directory", "a FIFO", "a regular file", …).
    pub kind: &'static str,
    pub action: Action,
    is_dir: bool,
    is_symlink: bool,
}

/// What became of one entry.
#[derive(Debug)]
pub struct Cleared {
    pub path: PathBuf,
    pub kind: &'static str,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub enum Outcome {
    Removed,
    MovedAside(PathBuf),
    /// Still there: neither removing nor moving it worked.
    Left(io::Error),
}

impl Entry {
    /// What is at `path` now and what clearing it would do; `None` if nothing is.
    pub fn at(path: &Path) -> Option<Entry> {
        let meta = fs::symlink_metadata(path).ok()?;
        let is_dir = meta.is_dir();
        let action = if is_dir && !FileId::at(path).is_some_and(|id| is_empty_dir(path, id)) {
            Action::MoveAside(aside_path(path))
        } else {
            Action::Remove
        };
        Some(Entry {
            path: path.to_path_buf(),
            kind: sys::file_kind(&meta),
            action,
            is_dir,
            is_symlink: meta.file_type().is_symlink(),
        })
    }

    /// Does what [`Entry::action`] says. A directory that filled up since it was
    /// looked at is moved aside instead of removed.
    pub fn clear(self) -> Cleared {
        let outcome = match &self.action {
            Action::MoveAside(to) => move_aside(&self.path, to),
            Action::Remove if self.is_dir => match fs::remove_dir(&self.path) {
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                    move_aside(&self.path, &aside_path(&self.path))
                }
                done => removal(done),
            },
            // A link to a directory is removed as a directory on Windows; on Unix
            // `remove_file` removes any link, so the fallback never runs there.
            Action::Remove => removal(fs::remove_file(&self.path).or_else(|e| {
                if self.is_symlink {
                    fs::remove_dir(&self.path).map_err(|_| e)
                } else {
                    Err(e)
                }
            })),
        };
        Cleared {
            path: self.path,
            kind: self.kind,
            outcome,
        }
    }
}

/// Clears whatever is at `path`; `None` if nothing was there.
pub fn clear(path: &Path) -> Option<Cleared> {
    Entry::at(path).map(Entry::clear)
}

fn removal(done: io::Result<()>) -> Outcome {
    match done {
        Ok(()) => Outcome::Removed,
        // Gone meanwhile: the name is clear all the same.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Outcome::Removed,
        Err(e) => Outcome::Left(e),
    }
}

fn move_aside(path: &Path, to: &Path) -> Outcome {
    // rename(2) replaces only an empty directory at `to` (nothing is lost); a
    // file or a directory with something in it makes it fail.
    match fs::rename(path, to) {
        Ok(()) => Outcome::MovedAside(to.to_path_buf()),
        Err(e) => Outcome::Left(e),
    }
}

/// Whether the directory at `path` (which was `id` when looked at) has no entries.
/// One that cannot be listed counts as not empty: it is moved aside, not removed.
fn is_empty_dir(path: &Path, id: FileId) -> bool {
    let empty = fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none());
    // A directory swapped for a symlink meanwhile: what was listed is not it.
    empty && FileId::at(path) == Some(id)
}

/// The first of `<entry>.moved-aside`, `<entry>.moved-aside-2`, … that names
/// nothing: in the state dir, and never a registration's name (none ends so).
fn aside_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let candidate = |n: u32| match n {
        1 => path.with_file_name(format!("{name}.moved-aside")),
        n => path.with_file_name(format!("{name}.moved-aside-{n}")),
    };
    (1..ASIDE_NAMES)
        .map(candidate)
        .find(|p| fs::symlink_metadata(p).is_err())
        .unwrap_or_else(|| candidate(ASIDE_NAMES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ocwrap-junk-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_empty_directory_is_removed_and_a_full_one_moved_aside_beside_it() {
        let dir = scratch("dirs");
        let empty = dir.join("a.lock");
        fs::create_dir(&empty).unwrap();
        let full = dir.join("b.lock");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("inside"), "kept").unwrap();
        fs::create_dir(dir.join("b.lock.moved-aside")).unwrap();
        fs::write(dir.join("b.lock.moved-aside").join("older"), "kept").unwrap();

        let planned = Entry::at(&empty).unwrap();
        assert_eq!(
            (planned.kind, &planned.action),
            ("a directory", &Action::Remove)
        );
        assert!(matches!(planned.clear().outcome, Outcome::Removed));
        assert!(fs::symlink_metadata(&empty).is_err());

        let to = dir.join("b.lock.moved-aside-2");
        assert_eq!(
            Entry::at(&full).unwrap().action,
            Action::MoveAside(to.clone())
        );
        let cleared = clear(&full).unwrap();
        assert!(
            matches!(&cleared.outcome, Outcome::MovedAside(p) if *p == to),
            "{cleared:?}"
        );
        assert!(fs::symlink_metadata(&full).is_err(), "the name is free");
        assert_eq!(fs::read_to_string(to.join("inside")).unwrap(), "kept");
        assert_eq!(
            fs::read_to_string(dir.join("b.lock.moved-aside").join("older")).unwrap(),
            "kept",
            "an earlier one is not replaced"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_directory_is_in_the_way_of_the_socket() {
        let dir = scratch("roles");
        let file = dir.join("file");
        fs::write(&file, "").unwrap();
        assert_eq!(in_the_way(&file, Role::Socket), None);
        assert_eq!(in_the_way(&file, Role::Lock), None);
        assert_eq!(in_the_way(&dir, Role::Socket), Some("a directory"));
        assert_eq!(in_the_way(&dir, Role::Turn), Some("a directory"));
        assert_eq!(in_the_way(&dir.join("absent"), Role::Lock), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
