//! The one rule for opening a state-dir entry (docs/DESIGN.md, "Records and
//! locks"): no symlink followed, no blocking open (a planted FIFO), and only a
//! regular file of a bounded size is used; and the removal of an entry only while
//! it is still the file we made.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use crate::sys::{self, FileId};

/// Why a state-dir file could not be used.
#[derive(Debug)]
pub enum Unreadable {
    /// A symlink, FIFO, directory…: never followed, never read. Says which.
    NotRegular(&'static str),
    /// Too large to be what it claims to be.
    TooLarge,
    /// Not a record: bad JSON, missing fields, wrong version.
    Corrupt(String),
    Io(io::Error),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::NotRegular(what) => write!(f, "not a regular file but {what}"),
            Unreadable::TooLarge => write!(f, "too large to be a record"),
            Unreadable::Corrupt(why) => write!(f, "corrupt: {why}"),
            Unreadable::Io(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// Opens a state-dir entry for reading: no symlink followed, no blocking open (a
/// planted FIFO), and only a regular file of at most `limit` bytes is returned.
pub(super) fn open_entry(
    path: &Path,
    limit: u64,
    write: bool,
    create: bool,
) -> Result<File, Unreadable> {
    let file = sys::state_entry_options()
        .read(true)
        .write(write)
        .create(create)
        .truncate(false)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if sys::is_symlink_refusal(&e) => return Err(Unreadable::NotRegular("a symlink")),
        // A directory opened for writing, a socket: refused by `open` itself.
        Err(e) => {
            return Err(match fs::symlink_metadata(path) {
                Ok(meta) if !meta.is_file() => Unreadable::NotRegular(sys::file_kind(&meta)),
                _ => Unreadable::Io(e),
            });
        }
    };
    let meta = file.metadata().map_err(Unreadable::Io)?;
    if !meta.is_file() {
        return Err(Unreadable::NotRegular(sys::file_kind(&meta)));
    }
    if meta.len() > limit {
        return Err(Unreadable::TooLarge);
    }
    Ok(file)
}

/// Removes `path` only if it still names the file `id`. (A check and then an
/// unlink: another process could replace the file between the two, but only one
/// that ignores the lock protocol; every ocwrap takes the name's lock first.)
pub fn remove_if_same(path: &Path, id: FileId) {
    if FileId::at(path) == Some(id) {
        let _ = fs::remove_file(path);
    }
}
