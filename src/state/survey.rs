//! The survey of the state dir: each name's files as found now, and what should
//! become of a registration no live process holds (docs/DESIGN.md,
//! "Registrations", the fate table).

use super::StateDir;
use super::entry::Unreadable;
use super::junk::{self, Role};
use super::lock::{self, Claim};
use super::record::{self, Record};
use crate::contain::CgroupPath;
use crate::identity::{Name, Stem, SupervisorId};
use crate::process::Pid;
use crate::sys::{self, FileId};

/// One stem of the state dir as found now.
#[derive(Debug)]
pub struct Found {
    pub stem: Stem,
    /// A live process holds the lock (or a shortage of descriptors kept us from
    /// telling: see [`lock::may_be_held`]).
    pub live: bool,
    /// The record, or why it cannot be used; `None` when there is no record file.
    pub record: Option<Result<Record, Unreadable>>,
    /// What is at the lock's path, and the identity written into it.
    pub lock_file: LockFile,
    pub claimed: Option<Claim>,
}

/// A supervisor that is gone, as its claim or its record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadSupervisor {
    pub id: SupervisorId,
    /// Its server's cgroup, when it used cgroup containment.
    pub cgroup: Option<CgroupPath>,
}

/// What is at a lock's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockFile {
    Absent,
    /// A regular file, of any size (see [`lock::Lock`]).
    Regular,
    /// A symlink, FIFO, directory… (which, in words): junk that only `gc` removes.
    NotRegular(&'static str),
}

impl LockFile {
    pub(super) fn at(path: &std::path::Path) -> LockFile {
        match std::fs::symlink_metadata(path) {
            Err(_) => LockFile::Absent,
            Ok(m) if m.is_file() => LockFile::Regular,
            Ok(m) => LockFile::NotRegular(sys::file_kind(&m)),
        }
    }
}

/// What should become of a registration that no live process holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    /// A live supervisor holds it.
    Live,
    /// Its supervisor is verifiably dead: tear down these supervisors' leftovers
    /// and remove the files.
    Dead(Vec<DeadSupervisor>),
    /// It names a supervisor that is running (a copy, or one re-registering):
    /// never touched by a sweep.
    NamesRunning(Pid),
    /// Nothing in it can be verified (corrupt, not a regular file): only `gc`
    /// removes it, and nothing is signalled for it.
    Unverifiable,
}

impl Found {
    pub fn look(state: &StateDir, stem: &Stem) -> Found {
        let lock_path = state.lock_path(stem);
        let record_path = state.record_path(stem);
        Found {
            stem: stem.clone(),
            live: lock::may_be_held(&lock_path),
            record: FileId::at(&record_path).map(|_| record::read(&record_path)),
            lock_file: LockFile::at(&lock_path),
            claimed: lock::claimed_by(&lock_path),
        }
    }

    /// [`Found::look`] by the holder of the stem's lock (a sweeper, `gc`), or by
    /// `gc` finding it junk: nobody else holds it, so it is not live, and what is
    /// said about it is what its files say.
    pub(super) fn look_holding(state: &StateDir, stem: &Stem) -> Found {
        Found {
            live: false,
            ..Found::look(state, stem)
        }
    }

    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref().and_then(|r| r.as_ref().ok())
    }

    /// The fate of this registration from what its files say, leaving aside
    /// whether its lock is held (a sweeper looks again while holding it).
    pub fn fate_of_contents(&self) -> Fate {
        let mut ids: Vec<DeadSupervisor> = self
            .claimed
            .iter()
            .map(|c| DeadSupervisor {
                id: c.id,
                cgroup: c.cgroup.clone(),
            })
            .collect();
        if let Some(r) = self
            .record()
            .filter(|r| ids.iter().all(|d| d.id != r.supervisor))
        {
            ids.push(DeadSupervisor {
                id: r.supervisor,
                cgroup: r.cgroup.clone(),
            });
        }
        if let Some(running) = ids.iter().find(|d| d.id.is_running()) {
            return Fate::NamesRunning(running.id.pid);
        }
        if matches!(self.lock_file, LockFile::NotRegular(_)) {
            return Fate::Unverifiable;
        }
        if !ids.is_empty() {
            // The claim in the lock file was written by the supervisor itself, so
            // it identifies it even beside a record that cannot be read.
            return Fate::Dead(ids);
        }
        match (&self.record, self.lock_file) {
            // Only an empty lock file: its holder died before it started anything,
            // so there is nothing to tear down.
            (None, LockFile::Regular) => Fate::Dead(ids),
            _ => Fate::Unverifiable,
        }
    }

    pub fn fate(&self) -> Fate {
        if self.live {
            Fate::Live
        } else {
            self.fate_of_contents()
        }
    }

    /// What is wrong with this entry, if anything, in a few words.
    pub fn problem(&self) -> Option<String> {
        let lock_junk = match self.lock_file {
            LockFile::NotRegular(kind) => Some(junk::describe(kind, Role::Lock)),
            LockFile::Absent | LockFile::Regular => None,
        };
        match (&self.record, self.fate()) {
            (_, Fate::Live) if self.record.is_none() => Some("starting: no record yet".into()),
            (Some(Err(why)), _) => Some(format!("record {why}")),
            (_, Fate::Live) => None,
            (_, _) if lock_junk.is_some() => lock_junk,
            (_, Fate::NamesRunning(pid)) => Some(format!(
                "names supervisor pid {pid}, which runs but does not hold this name"
            )),
            (None, _) => Some("stale: lock without a record".into()),
            (Some(Ok(_)), _) => Some("stale: its supervisor is gone".into()),
        }
    }
}

/// Every stem of the state dir (or just `only`), as it is now.
pub fn survey(state: &StateDir, only: Option<&Name>) -> Vec<Found> {
    state
        .stems()
        .into_iter()
        .filter(|stem| only.is_none_or(|o| o.stem() == stem))
        .map(|stem| Found::look(state, &stem))
        .collect()
}
