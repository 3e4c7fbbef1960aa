//! The state directory: where records, locks, control sockets and logs live
//! (docs/DESIGN.md, "Records and locks"), and the checks that make it safe to trust.
//!
//! The directory is created private to the user (`0700` on Unix; on Windows a
//! protected access list naming only the user). An existing one is refused (exit
//! 125) if it is a symlink, or if others may use it (`sys::private_dir_problem`:
//! another owner, group- or world-writable): any of those would let someone else
//! plant records, locks or sockets that ocwrap then acts on.

pub mod entry;
pub mod junk;
pub mod lock;
pub mod record;
pub mod registration;
pub mod survey;
pub mod sweep;

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::Error;
use crate::identity::Stem;
use crate::sys;

#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
    /// The directory this handle was opened on; a wiped and re-made one differs.
    id: Option<sys::FileId>,
}

impl StateDir {
    /// `--state-dir`, else the platform's default: `$XDG_RUNTIME_DIR/ocwrap`, else
    /// `$TMPDIR/ocwrap-<uid>` (Unix); `%LOCALAPPDATA%\ocwrap` (Windows).
    pub fn default_path() -> PathBuf {
        sys::default_state_dir()
    }

    /// Opens (creating if needed) and checks the state directory.
    pub fn open(path: Option<&Path>) -> Result<StateDir, Error> {
        let given = match path {
            Some(path) => absolute(path)?,
            None => StateDir::default_path(),
        };
        let path = normalise(&given).ok_or_else(|| Error::UnsafeStateDir {
            path: given.clone(),
            problem: "ends in '..'; name the directory itself",
        })?;
        let unsafe_dir = |problem: &'static str| Error::UnsafeStateDir {
            path: path.clone(),
            problem,
        };
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(|source| Error::StateDir {
                        path: path.clone(),
                        source,
                    })?;
                }
                match sys::create_private_dir(&path) {
                    Ok(()) => {}
                    // Another ocwrap created it first: fine, it is checked below.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(Error::StateDir {
                            path: path.clone(),
                            source,
                        });
                    }
                }
            }
            Err(source) => {
                return Err(Error::StateDir {
                    path: path.clone(),
                    source,
                });
            }
            Ok(_) => {}
        }
        // Checked after creation too: what matters is what is there now.
        let meta = fs::symlink_metadata(&path).map_err(|source| Error::StateDir {
            path: path.clone(),
            source,
        })?;
        if meta.file_type().is_symlink() {
            return Err(unsafe_dir("is a symlink"));
        }
        if !meta.is_dir() {
            return Err(unsafe_dir("is not a directory"));
        }
        if let Some(problem) = sys::private_dir_problem(&path, &meta) {
            return Err(unsafe_dir(problem));
        }
        let id = sys::FileId::at(&path);
        Ok(StateDir { path, id })
    }

    /// Whether the path still names the directory this handle was opened on.
    pub fn is_in_place(&self) -> bool {
        sys::FileId::at(&self.path) == self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn lock_path(&self, stem: impl AsRef<Stem>) -> PathBuf {
        self.path.join(format!("{}.lock", stem.as_ref()))
    }

    pub fn record_path(&self, stem: impl AsRef<Stem>) -> PathBuf {
        self.path.join(format!("{}.json", stem.as_ref()))
    }

    pub fn socket_path(&self, stem: impl AsRef<Stem>) -> PathBuf {
        self.path.join(format!("{}.sock", stem.as_ref()))
    }

    /// The notify socket of `--ready notify`.
    pub fn notify_path(&self, stem: impl AsRef<Stem>) -> PathBuf {
        self.path.join(format!("{}.notify", stem.as_ref()))
    }

    /// `up`'s turn lock for a name: concurrent `up`s decide one at a time.
    pub fn turn_path(&self, stem: impl AsRef<Stem>) -> PathBuf {
        self.path.join(format!("{}.up", stem.as_ref()))
    }

    /// The control socket's path, if it fits in a Unix socket address.
    pub fn checked_socket_path(&self, stem: impl AsRef<Stem>) -> Result<PathBuf, Error> {
        let path = self.socket_path(stem);
        if path.as_os_str().len() > sys::MAX_CONTROL_PATH {
            return Err(Error::SocketPathTooLong {
                path,
                limit: sys::MAX_CONTROL_PATH,
            });
        }
        Ok(path)
    }

    pub fn log_path(&self, stem: impl AsRef<Stem>) -> PathBuf {
        self.path.join(format!("{}.log", stem.as_ref()))
    }

    /// The stems of every `*.json` and `*.lock` here (records and locks of live,
    /// dead and half-started supervisors alike), sorted, without duplicates.
    pub fn stems(&self) -> Vec<Stem> {
        self.stems_of(&["json", "lock"])
    }

    /// The stems of every entry here named `<stem>.<ext>` for one of `exts` (`up`,
    /// `sock`, …), whatever kind of file it is; sorted, without duplicates.
    pub fn stems_of(&self, exts: &[&str]) -> Vec<Stem> {
        let mut stems: Vec<Stem> = fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (stem, ext) = name.rsplit_once('.')?;
                exts.contains(&ext).then(|| Stem::listed(stem)).flatten()
            })
            .collect();
        stems.sort();
        stems.dedup();
        stems
    }
}

/// A `--state-dir` made absolute against the working directory, once, where it
/// enters: everything after (the supervisor `up` starts, its record) names the
/// same directory whatever its own working directory.
pub fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|source| Error::StateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// `path` without trailing slashes and `.` components, so that its last component
/// is the directory itself: `symlink_metadata("link/")` and `("link/.")` resolve the
/// symlink `link`, and a symlinked state dir would pass as a plain directory. `None`
/// when the last component is `..`, which names the parent of wherever the rest of
/// the path leads, possibly through a symlink: no check on it would mean much.
fn normalise(path: &Path) -> Option<PathBuf> {
    let normal: PathBuf = path.components().collect();
    match normal.components().next_back() {
        Some(Component::ParentDir) => None,
        _ => Some(normal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_path_ends_in_the_directory_itself() {
        for (given, normal) in [
            ("link", "link"),
            ("link/", "link"),
            ("link//", "link"),
            ("link/.", "link"),
            ("link/./", "link"),
            ("/run/user/0/./ocwrap/", "/run/user/0/ocwrap"),
            ("./state", "./state"),
            ("a/../b", "a/../b"),
            ("/", "/"),
        ] {
            // Compared as text: `Path`'s own equality ignores trailing slashes. The
            // expected text in the platform's own separators (`\` on Windows).
            let normal: PathBuf = Path::new(normal).components().collect();
            assert_eq!(
                normalise(Path::new(given)).map(PathBuf::into_os_string),
                Some(normal.into_os_string()),
                "{given}"
            );
        }
        for parent in ["..", "state/..", "state/../", "state/../."] {
            assert_eq!(normalise(Path::new(parent)), None, "{parent}");
        }
    }
}
