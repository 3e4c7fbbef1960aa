//! A supervisor's registration in the state dir — its lock, control socket and
//! record — kept true while it lives, and removed after it dies (docs/DESIGN.md,
//! "Registrations").
//!
//! A live supervisor holds a [`Registration`]. It acts only on files that are still
//! its own (same device and inode as when it made them), and it watches the
//! directory and each of its files (not the directory's contents: other
//! supervisors' activity there must not wake it). When the dir is wiped or
//! replaced, or one of its files is removed, it makes the dir again and
//! re-registers, so that `up` finds it instead of starting a duplicate and `stop`
//! can still reach it. It does so [`REPAIR_DELAY`] after the last disturbance, so
//! that a cleaner busy removing the directory finishes first instead of finding
//! it refilled under its feet. The watch starts [`WATCH_DELAY`] after the
//! registration: closing an inotify instance waits for a kernel grace period
//! (milliseconds), which a supervisor that lives for a moment (`ocwrap -- true`)
//! should not pay at its exit. When the watch starts it looks once, so a
//! disturbance in that first moment is not missed.
//!
//! A dead supervisor leaves its registration behind (SIGKILL, OOM). [`sweep`] runs
//! first in every command that opens the state dir and removes the registrations
//! whose supervisor is *verifiably* dead: the lock is free **and** the supervisor
//! named by the lock file or the record is gone (no such PID, a zombie, or the PID
//! now has another start time). Before the files go, the leftovers of that
//! supervisor's tree are torn down: only processes that carry its exact tree
//! marker in their environment and started after it. A free lock alone proves
//! nothing: a record copied under another name, or the registration of a
//! supervisor whose state dir was just wiped, names a supervisor that is alive.

use std::io;
use std::time::{Duration, Instant};

use crate::contain;
use crate::control::ControlSocket;
use crate::diag;
use crate::error::Error;
use crate::junk::{self, Cleared, Role};
use crate::process::{Pid, ProcInfo, StartTime};
use crate::record::{self, Claim, Lock, Record, RecordState, SupervisorId, Unreadable};
use crate::state::{Name, StateDir};
use crate::sys::{self, FileId, FileWatch, Signal, Waitable};
use crate::teardown::{Teardown, Tree};
use crate::tree::Pins;

/// How long `run` waits for a name whose lock is held by a sweeper (cleaning up a
/// dead supervisor of that name) rather than by a live supervisor: longer than a
/// sweep's own bound (the kill wait).
const SWEEPER_WAIT: Duration = Duration::from_secs(7);

/// How long after registering a supervisor starts watching its files.
pub const WATCH_DELAY: Duration = Duration::from_millis(100);

/// How long after the last disturbance of its files a supervisor re-registers.
pub const REPAIR_DELAY: Duration = Duration::from_millis(50);

/// How long a supervisor waits before it tries again to re-register after a
/// failure (the state dir cannot be made, a system call failed).
pub const REPAIR_RETRY: Duration = Duration::from_secs(1);

/// How often a waiting `run` looks again at who holds the name.
const HOLDER_RECHECK: Duration = Duration::from_millis(50);

/// What a live supervisor holds in the state dir.
#[derive(Debug)]
pub struct Registration {
    state: StateDir,
    stem: String,
    claim: Claim,
    lock: Lock,
    socket: ControlSocket,
    /// The record file we wrote last, if any.
    record: Option<FileId>,
    watch: Option<FileWatch>,
    /// When to look whether the registration needs repair (after a disturbance),
    /// or to try a failed record write again.
    repair_at: Option<Instant>,
    /// The last record write failed (a full disk, say): it is tried again every
    /// [`REPAIR_RETRY`] until one succeeds, so the record catches up by itself.
    unsaved: bool,
}

impl Registration {
    /// Takes the name `stem`, says who holds it, and binds the control socket.
    pub fn take(state: StateDir, stem: String, me: SupervisorId) -> Result<Registration, Error> {
        let mut lock = take_name(&state, &stem)?;
        let claim = Claim {
            id: me,
            cgroup: None,
        };
        lock.claim(&claim)
            .map_err(Error::os("writing the lock file"))?;
        let socket_path = state.socket_path(&stem);
        let socket = match ControlSocket::bind(&socket_path) {
            Ok(socket) => socket,
            Err(e) => {
                lock.remove();
                return Err(junk::in_the_way_or(
                    &socket_path,
                    Role::Socket,
                    "binding the control socket",
                )(e));
            }
        };
        Ok(Registration {
            state,
            stem,
            claim,
            lock,
            socket,
            record: None,
            watch: None,
            repair_at: Some(Instant::now() + WATCH_DELAY),
            unsaved: false,
        })
    }

    /// Watches the dir, the lock, the socket and the record (once it is written).
    fn watch_all(&mut self) {
        if let Some(watch) = &mut self.watch {
            let _ = watch.watch_dir(self.state.path());
            let _ = watch.watch_file(&self.state.lock_path(&self.stem));
            let _ = watch.watch_file(&self.state.socket_path(&self.stem));
            if self.record.is_some() {
                let _ = watch.watch_file(&self.state.record_path(&self.stem));
            }
        }
    }

    /// Starts the watch (see the module header), if it has not started yet.
    fn start_watch(&mut self) {
        if self.watch.is_some() {
            return;
        }
        self.watch = FileWatch::new()
            .map_err(|e| diag::note(format_args!("not watching the state dir: {e}")))
            .ok();
        self.watch_all();
    }

    /// Adds the server's cgroup to the claim, before the server starts: after our
    /// own death, the sweep finds exactly what is left in it.
    /// Without a cgroup the claim already says all there is: nothing is written.
    pub fn claim_cgroup(&mut self, cgroup: Option<String>) -> io::Result<()> {
        if cgroup == self.claim.cgroup {
            return Ok(());
        }
        self.claim.cgroup = cgroup;
        self.lock.claim(&self.claim)
    }

    pub fn socket(&self) -> &ControlSocket {
        &self.socket
    }

    pub fn socket_mut(&mut self) -> &mut ControlSocket {
        &mut self.socket
    }

    /// Whether the watch on our files and the state dir runs.
    pub fn is_watched(&self) -> bool {
        self.watch.is_some()
    }

    /// Ready when one of our files or the state dir was disturbed.
    pub fn watch_waitables(&self) -> Vec<Waitable<'_>> {
        self.watch
            .as_ref()
            .map(FileWatch::waitables)
            .unwrap_or_default()
    }

    /// Writes the record, re-registering first if the registration was disturbed.
    ///
    /// The record is first written when the server is ready: while it starts, the
    /// lock's claim names the supervisor and the control socket answers `status`,
    /// and a record that would only say `starting` is a write nobody needs (`up`
    /// learns readiness from the supervisor itself). So one `up` that starts a
    /// server costs one record write. A server torn down before it was ready never
    /// gets a record at all.
    pub fn save(&mut self, record: &Record) {
        let never_ready = self.record.is_none() && record.state != RecordState::Ready;
        if never_ready {
            return;
        }
        if !self.is_intact() {
            self.repair(record);
            return;
        }
        self.write(record);
    }

    /// After the watch woke the loop: consume its events and plan a look.
    pub fn on_disturbance(&mut self, now: Instant) {
        if self.watch.as_mut().is_some_and(|watch| watch.drain()) {
            self.repair_at = Some(now + REPAIR_DELAY);
        }
    }

    /// How long the loop may sleep before [`Registration::check`] is due.
    pub fn next_check(&self, now: Instant) -> Option<Duration> {
        self.repair_at.map(|t| t.saturating_duration_since(now))
    }

    /// When due: starts the watch, re-registers if a disturbance (seen by the
    /// watch, or before it started) left the registration broken, and tries a
    /// record write that failed again.
    pub fn check(&mut self, now: Instant, record: &Record) {
        if self.repair_at.is_some_and(|t| now >= t) {
            self.repair_at = None;
            self.start_watch();
            if !self.is_intact() {
                self.repair(record);
            }
            if self.unsaved {
                self.save(record);
            }
        }
    }

    fn is_intact(&self) -> bool {
        self.state.is_in_place()
            && self.lock.is_in_place()
            && self.socket.is_in_place()
            && self
                .record
                .is_none_or(|id| FileId::at(&self.state.record_path(&self.stem)) == Some(id))
    }

    fn write(&mut self, record: &Record) {
        match record::write(&self.state.record_path(&self.stem), record) {
            Ok(id) => {
                self.record = Some(id);
                if std::mem::take(&mut self.unsaved) {
                    diag::say(format_args!(
                        "the record for {} is written again",
                        self.stem
                    ));
                }
                if let Some(watch) = &mut self.watch {
                    let _ = watch.watch_file(&self.state.record_path(&self.stem));
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut self.unsaved, true) {
                    diag::say(format_args!(
                        "cannot write the record for {} (trying again every {REPAIR_RETRY:?}): {e}",
                        self.stem
                    ));
                }
                let retry = Instant::now() + REPAIR_RETRY;
                self.repair_at = Some(self.repair_at.map_or(retry, |t| t.min(retry)));
            }
        }
    }

    /// Makes the registration whole again after the state dir was wiped, replaced,
    /// or had our files removed: the dir, the lock (or, if someone else took the
    /// name meanwhile, the unnamed `pid-N` registration), the socket, the record.
    fn repair(&mut self, record: &Record) {
        diag::note(format_args!(
            "registration of {} disturbed: re-registering",
            self.stem
        ));
        let state = match StateDir::open(Some(self.state.path())) {
            Ok(state) => state,
            Err(e) => {
                diag::say(format_args!(
                    "cannot re-register {} (trying again in {REPAIR_RETRY:?}): {}",
                    self.stem,
                    crate::error::one_line(&e)
                ));
                self.repair_at = Some(Instant::now() + REPAIR_RETRY);
                return;
            }
        };
        if !self.lock.is_in_place() {
            match self.retake(&state) {
                Ok(true) => {}
                // A sweeper holds the name for a moment (it found the lock file
                // we had just made, before we locked it): look again soon,
                // without waiting here.
                Ok(false) => {
                    self.repair_at = Some(Instant::now() + REPAIR_DELAY);
                    return;
                }
                Err(e) => {
                    diag::say(format_args!(
                        "cannot re-register {} (trying again in {REPAIR_RETRY:?}): {e}",
                        self.stem
                    ));
                    self.repair_at = Some(Instant::now() + REPAIR_RETRY);
                    return;
                }
            }
        }
        if !self.socket.is_in_place() {
            match ControlSocket::bind(&state.socket_path(&self.stem)) {
                Ok(socket) => self.socket = socket,
                Err(e) => diag::say(format_args!("cannot rebind the control socket: {e}")),
            }
        }
        self.state = state;
        self.watch_all();
        if self.record.is_some() || record.state == RecordState::Ready {
            self.write(record);
        }
    }

    /// Takes our name's lock again; if another supervisor took the name while our
    /// registration was gone, registers as `pid-<our pid>` instead. `Ok(false)`:
    /// the lock is held by someone whose claim names no running supervisor (a
    /// sweeper, for a moment): try again later.
    fn retake(&mut self, state: &StateDir) -> io::Result<bool> {
        let path = state.lock_path(&self.stem);
        let mut taken = Lock::try_acquire(path.clone())?;
        if taken.is_none() {
            let holder = record::claimed_by(&path)
                .map(|claim| claim.id)
                .filter(SupervisorId::is_running);
            if holder.is_none() {
                return Ok(false);
            }
            let fallback = Name::unnamed(self.claim.id.pid).to_string();
            diag::say(format_args!(
                "the name {} was taken while our registration was gone; registering as {fallback}",
                self.stem
            ));
            taken = Lock::try_acquire(state.lock_path(&fallback))?;
            self.stem = fallback;
        }
        let mut lock = taken.ok_or_else(|| io::Error::other("no name left to register under"))?;
        lock.claim(&self.claim)?;
        self.lock = lock;
        Ok(true)
    }

    /// Removes the record, the socket and the lock (last), each only if it is
    /// still ours.
    pub fn remove(self) {
        let files = Files::Ours {
            record: self.record,
            socket: self.socket.id(),
        };
        drop(self.socket);
        remove_registration(&self.state, &self.stem, files, Some(self.lock));
    }
}

/// Which files of a registration to remove.
enum Files {
    /// Only the files we made, by identity: what a live supervisor removes at its
    /// end (after a wipe, the paths may name someone else's files).
    Ours {
        record: Option<FileId>,
        socket: FileId,
    },
    /// Whatever is at the paths (never followed: a symlink is removed itself):
    /// what a sweeper removes, holding the name's lock.
    AtPaths(Clearing),
}

/// What a removal by path takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clearing {
    /// The files: what the sweep every command runs first removes. A directory
    /// under one of the names stays, for `gc`.
    Files,
    /// The files and any junk under the names (see [`crate::junk`]), `up`'s turn
    /// lock included when it is junk: what `gc` removes, saying what became of each.
    Junk,
}

/// Removes a registration: the record and the socket first, the lock last, so
/// that whoever finds the lock free finds nothing else of it. The one place that
/// removes a registration, for a supervisor at its end, the sweep and `gc`.
/// Returns what became of each entry cleared as junk ([`Clearing::Junk`]).
fn remove_registration(
    state: &StateDir,
    stem: &str,
    files: Files,
    lock: Option<Lock>,
) -> Vec<Cleared> {
    let (record, socket) = (state.record_path(stem), state.socket_path(stem));
    let mut cleared = Vec::new();
    match files {
        Files::Ours {
            record: record_id,
            socket: socket_id,
        } => {
            if let Some(id) = record_id {
                record::remove_if_same(&record, id);
            }
            record::remove_if_same(&socket, socket_id);
        }
        Files::AtPaths(Clearing::Files) => {
            let _ = std::fs::remove_file(&record);
            let _ = std::fs::remove_file(&socket);
        }
        Files::AtPaths(Clearing::Junk) => {
            cleared.extend(
                junk_paths(state, stem)
                    .iter()
                    .filter_map(|p| junk::clear(p)),
            );
        }
    }
    match lock {
        Some(lock) => lock.remove(),
        // A lock path that is not a regular file cannot be locked: it is junk,
        // which only `gc` comes here to clear.
        None => cleared.extend(junk::clear(&state.lock_path(stem))),
    }
    cleared
}

/// What removing `stem` with [`Clearing::Junk`] clears besides the lock, in
/// order: the record, the socket, and the turn lock when it is junk.
fn junk_paths(state: &StateDir, stem: &str) -> Vec<std::path::PathBuf> {
    let turn = state.turn_path(stem);
    let turn_is_junk = junk::in_the_way(&turn, Role::Turn).is_some();
    let mut paths = vec![state.record_path(stem), state.socket_path(stem)];
    paths.extend(turn_is_junk.then_some(turn));
    paths
}

/// Every entry that removing `stem` with [`Clearing::Junk`] clears, as it is
/// now, and what clearing it does: what `gc --dry-run` reports.
pub fn junk_plan(state: &StateDir, stem: &str) -> Vec<junk::Entry> {
    let mut paths = junk_paths(state, stem);
    paths.push(state.lock_path(stem));
    paths.iter().filter_map(|p| junk::Entry::at(p)).collect()
}

/// Takes the lock of `stem`. Held by a live supervisor: `AlreadyRunning`. Held by
/// someone whose claim names no running supervisor (a sweeper removing a dead
/// supervisor's registration, or a newcomer in the instant before it writes its
/// claim): wait for it, up to [`SWEEPER_WAIT`].
fn take_name(state: &StateDir, stem: &str) -> Result<Lock, Error> {
    let path = state.lock_path(stem);
    let give_up = Instant::now() + SWEEPER_WAIT;
    loop {
        if let Some(lock) = Lock::try_acquire(path.clone()).map_err(junk::in_the_way_or(
            &path,
            Role::Lock,
            "locking the name",
        ))? {
            return Ok(lock);
        }
        let holder = record::claimed_by(&path)
            .map(|claim| claim.id)
            .filter(SupervisorId::is_running);
        if holder.is_some() || Instant::now() >= give_up {
            return Err(Error::AlreadyRunning {
                name: stem.to_string(),
                pid: holder.map(|id| id.pid),
            });
        }
        record::wait_until_free(&path, Instant::now() + HOLDER_RECHECK);
    }
}

/// One stem of the state dir as found now.
#[derive(Debug)]
pub struct Found {
    pub stem: String,
    /// A live process holds the lock (or a shortage of descriptors kept us from
    /// telling: see [`record::may_be_held`]).
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
    pub cgroup: Option<String>,
}

/// What is at a lock's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockFile {
    Absent,
    /// A regular file, of any size (see [`record::Lock`]).
    Regular,
    /// A symlink, FIFO, directory… (which, in words): junk that only `gc` removes.
    NotRegular(&'static str),
}

impl LockFile {
    fn at(path: &std::path::Path) -> LockFile {
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
    pub fn look(state: &StateDir, stem: &str) -> Found {
        let lock_path = state.lock_path(stem);
        let record_path = state.record_path(stem);
        Found {
            stem: stem.to_string(),
            live: record::may_be_held(&lock_path),
            record: FileId::at(&record_path).map(|_| record::read(&record_path)),
            lock_file: LockFile::at(&lock_path),
            claimed: record::claimed_by(&lock_path),
        }
    }

    /// [`Found::look`] by the holder of the stem's lock (a sweeper, `gc`), or by
    /// `gc` finding it junk: nobody else holds it, so it is not live, and what is
    /// said about it is what its files say.
    fn look_holding(state: &StateDir, stem: &str) -> Found {
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
pub fn survey(state: &StateDir, only: Option<&str>) -> Vec<Found> {
    state
        .stems()
        .into_iter()
        .filter(|stem| only.is_none_or(|o| o == stem))
        .map(|stem| Found::look(state, &stem))
        .collect()
}

/// A registration removed by [`sweep`] or `gc`.
#[derive(Debug)]
pub struct Removed {
    pub stem: String,
    pub problem: Option<String>,
    /// The leftover processes that were torn down.
    pub killed: Vec<Pid>,
    /// What became of each entry, with [`Clearing::Junk`]; empty otherwise.
    pub cleared: Vec<Cleared>,
}

/// Removes the registration of every verifiably dead supervisor, tearing down its
/// leftovers first. Costs a lock probe per registration while nothing is dead.
pub fn sweep(state: &StateDir) -> Vec<Removed> {
    let removed: Vec<Removed> = state
        .stems()
        .into_iter()
        .filter(|stem| !record::is_held(&state.lock_path(stem)))
        .filter(|stem| matches!(Found::look(state, stem).fate(), Fate::Dead(_)))
        .filter_map(|stem| remove_dead(state, &stem, Clearing::Files))
        .collect();
    for r in removed.iter().filter(|r| !r.killed.is_empty()) {
        diag::say(format_args!(
            "{}: its supervisor died; tore down {} leftover process(es)",
            r.stem,
            r.killed.len()
        ));
    }
    removed
}

/// Takes the lock of a registration that looked dead, looks again under the lock
/// (it may have changed), tears down the dead supervisors' leftovers and removes
/// the files (and junk, with [`Clearing::Junk`]). `None` when someone else holds
/// the lock or it is not dead after all.
pub fn remove_dead(state: &StateDir, stem: &str, clearing: Clearing) -> Option<Removed> {
    let lock_path = state.lock_path(stem);
    let lock = if LockFile::at(&lock_path) == LockFile::Regular {
        Lock::try_existing(lock_path).ok()??
    } else {
        Lock::try_acquire(lock_path).ok()??
    };
    let found = Found::look_holding(state, stem);
    let Fate::Dead(ids) = found.fate_of_contents() else {
        drop(lock);
        return None;
    };
    let killed = ids.iter().flat_map(tear_down).collect();
    let cleared = remove_registration(state, stem, Files::AtPaths(clearing), Some(lock));
    Some(Removed {
        problem: found.problem(),
        stem: found.stem,
        killed,
        cleared,
    })
}

/// Removes a registration whose files cannot be trusted (corrupt, not regular, or
/// a copy of another supervisor's record), if `still_so` holds for what is found
/// under its lock: the files and any junk under its names go, nothing is
/// signalled. For `gc` only.
pub fn remove_untrusted(
    state: &StateDir,
    stem: &str,
    still_so: impl Fn(&Found) -> bool,
) -> Option<Removed> {
    let lock_path = state.lock_path(stem);
    let lock = match Lock::try_acquire(lock_path.clone()) {
        Ok(Some(lock)) => Some(lock),
        Ok(None) => return None,
        // A lock path that is not a regular file cannot be locked: it is junk
        // itself. Any other failure (out of descriptors) proves nothing: a lock
        // file that cannot be locked now is left alone.
        Err(_) if matches!(LockFile::at(&lock_path), LockFile::NotRegular(_)) => None,
        Err(_) => return None,
    };
    let found = Found::look_holding(state, stem);
    if !still_so(&found) {
        // A lock file without a claim is ours (just made) or abandoned: not kept.
        if let Some(lock) = lock.filter(|_| found.claimed.is_none()) {
            lock.remove();
        }
        return None;
    }
    let cleared = remove_registration(state, stem, Files::AtPaths(Clearing::Junk), lock);
    Some(Removed {
        stem: stem.to_string(),
        problem: found.problem(),
        killed: Vec::new(),
        cleared,
    })
}

/// The PIDs a sweep would tear down for a dead registration (for `gc --dry-run`).
pub fn leftovers_of(found: &Found) -> Vec<Pid> {
    match found.fate() {
        Fate::Dead(ids) => ids
            .into_iter()
            .flat_map(|dead| Leftovers::of(dead.id).members())
            .map(|p| p.pid)
            .collect(),
        _ => Vec::new(),
    }
}

/// Tears down what is left of a dead supervisor's tree and returns the PIDs that
/// were there. With cgroup containment that is its cgroup (killed by the kernel,
/// then removed); then, and in every case, the processes carrying its marker (a
/// descendant that moved itself out of the cgroup has it too): SIGTERM and
/// SIGKILL at once (their server already died of SIGKILL, by its parent-death
/// signal), then a wait until they are gone, at most the teardown's kill wait.
fn tear_down(dead: &DeadSupervisor) -> Vec<Pid> {
    let mut pids = Vec::new();
    if let Some(path) = &dead.cgroup {
        let marker = contain::marker_value(dead.id.pid, dead.id.start);
        match contain::kill_leftover_cgroup(path, &marker) {
            Ok(killed) => pids = killed,
            Err(e) => diag::say(format_args!("leftover cgroup {path}: {e}")),
        }
    }
    let mut leftovers = Leftovers::of(dead.id);
    let escaped: Vec<Pid> = leftovers.members().iter().map(|p| p.pid).collect();
    if escaped.is_empty() {
        return pids;
    }
    pids.extend(escaped);
    // A cgroup member just killed may still show its marker.
    pids.sort();
    pids.dedup();
    let mut teardown = Teardown::new(Duration::ZERO);
    teardown.begin(Instant::now(), &mut leftovers);
    teardown.run_to_end(&mut leftovers);
    pids
}

/// The verified leftovers of one dead supervisor's tree (see the module header).
struct Leftovers {
    marker: String,
    born_after: StartTime,
    me: Pid,
    /// The leftovers signalled so far, pinned; teardown wakes when one exits.
    pins: Pins,
}

impl Leftovers {
    fn of(dead: SupervisorId) -> Leftovers {
        Leftovers {
            marker: dead.tree_marker(),
            born_after: dead.start,
            me: Pid::current(),
            pins: Pins::new(),
        }
    }

    fn is_member(&self, p: &ProcInfo) -> bool {
        p.is_live()
            && p.pid != self.me
            && p.start >= self.born_after
            && sys::environ_has(p.pid, &self.marker)
    }

    fn members(&self) -> Vec<ProcInfo> {
        sys::all_processes()
            .into_iter()
            .filter(|p| self.is_member(p))
            .collect()
    }
}

impl Tree for Leftovers {
    fn signal_all(&mut self, signals: &[Signal]) {
        for member in self.members() {
            self.pins.pin(member);
        }
        for &signal in signals {
            self.pins.send(signal, None);
        }
    }

    /// Scans again only once every pinned leftover has exited.
    fn is_empty(&mut self) -> bool {
        self.pins.drop_exited();
        self.pins.is_empty() && self.members().is_empty()
    }

    fn waitables(&self) -> Vec<Waitable<'_>> {
        self.pins.waitables()
    }
}
