//! A live supervisor's registration in the state dir — its lock, control socket
//! and record — kept true while it lives (docs/DESIGN.md, "Registrations"), and
//! the one removal of a registration, which a supervisor at its end, the sweep and
//! `gc` share.

use std::io;
use std::time::{Duration, Instant};

use super::StateDir;
use super::entry::remove_if_same;
use super::junk::{self, Cleared, Role};
use super::lock::{self, Claim, Lock};
use super::record::{self, Record, RecordState};
use crate::contain::CgroupPath;
use crate::control::ControlSocket;
use crate::diag;
use crate::error::Error;
use crate::identity::{Name, Stem, SupervisorId};
use crate::sys::{FileId, FileWatch, Waitable};

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
    stem: Name,
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
    pub fn take(state: StateDir, stem: Name, me: SupervisorId) -> Result<Registration, Error> {
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

    /// Where `--ready notify` binds its socket: `<name>.notify`.
    pub fn notify_path(&self) -> std::path::PathBuf {
        self.state.notify_path(&self.stem)
    }

    /// Adds the server's cgroup to the claim, before the server starts: after our
    /// own death, the sweep finds exactly what is left in it.
    /// Without a cgroup the claim already says all there is: nothing is written.
    pub fn claim_cgroup(&mut self, cgroup: Option<CgroupPath>) -> io::Result<()> {
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
            let holder = lock::claimed_by(&path)
                .map(|claim| claim.id)
                .filter(SupervisorId::is_running);
            if holder.is_none() {
                return Ok(false);
            }
            let fallback = Name::unnamed(self.claim.id.pid);
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
        remove_registration(&self.state, self.stem.stem(), files, Some(self.lock));
    }
}

/// Which files of a registration to remove.
pub(super) enum Files {
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
    /// The files and any junk under the names (see [`crate::state::junk`]), `up`'s turn
    /// lock included when it is junk: what `gc` removes, saying what became of each.
    Junk,
}

/// Removes a registration: the record and the socket first, the lock last, so
/// that whoever finds the lock free finds nothing else of it. The one place that
/// removes a registration, for a supervisor at its end, the sweep and `gc`.
/// Returns what became of each entry cleared as junk ([`Clearing::Junk`]).
pub(super) fn remove_registration(
    state: &StateDir,
    stem: &Stem,
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
                remove_if_same(&record, id);
            }
            remove_if_same(&socket, socket_id);
        }
        Files::AtPaths(Clearing::Files) => {
            let _ = std::fs::remove_file(&record);
            let _ = std::fs::remove_file(&socket);
            // A dead supervisor's notify socket, if it had one.
            let _ = std::fs::remove_file(state.notify_path(stem));
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
fn junk_paths(state: &StateDir, stem: &Stem) -> Vec<std::path::PathBuf> {
    let turn = state.turn_path(stem);
    let turn_is_junk = junk::in_the_way(&turn, Role::Turn).is_some();
    let mut paths = vec![
        state.record_path(stem),
        state.socket_path(stem),
        state.notify_path(stem),
    ];
    paths.extend(turn_is_junk.then_some(turn));
    paths
}

/// Every entry that removing `stem` with [`Clearing::Junk`] clears, as it is
/// now, and what clearing it does: what `gc --dry-run` reports.
pub fn junk_plan(state: &StateDir, stem: &Stem) -> Vec<junk::Entry> {
    let mut paths = junk_paths(state, stem);
    paths.push(state.lock_path(stem));
    paths.iter().filter_map(|p| junk::Entry::at(p)).collect()
}

/// Takes the lock of `stem`. Held by a live supervisor: `AlreadyRunning`. Held by
/// someone whose claim names no running supervisor (a sweeper removing a dead
/// supervisor's registration, or a newcomer in the instant before it writes its
/// claim): wait for it, up to [`SWEEPER_WAIT`].
fn take_name(state: &StateDir, stem: &Name) -> Result<Lock, Error> {
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
        let holder = lock::claimed_by(&path)
            .map(|claim| claim.id)
            .filter(SupervisorId::is_running);
        if holder.is_some() || Instant::now() >= give_up {
            return Err(Error::AlreadyRunning {
                name: stem.clone(),
                pid: holder.map(|id| id.pid),
            });
        }
        lock::wait_until_free(&path, Instant::now() + HOLDER_RECHECK);
    }
}
