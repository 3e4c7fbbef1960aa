//! The supervisor's answers to control requests (docs/DESIGN.md, "Control
//! protocol"): status, attach, release and stop, and the checks that refuse a
//! request before it has any effect.

use std::time::Instant;

use crate::control::{ClientId, Refusal, Reply, Request};
use crate::diag;
use crate::duration::deadline_after;
use crate::lifecycle::Input;
use crate::owner::{self, Owner};
use crate::process::Pid;

use super::MAX_LEASES;
use super::run_loop::Supervisor;

impl Supervisor {
    pub(super) fn answer_waiting(&mut self, reply: &Reply) {
        for client in std::mem::take(&mut self.waiting) {
            self.clients.reply(client, reply);
        }
    }

    pub(super) fn on_request(&mut self, client: ClientId, request: Request, now: Instant) {
        diag::note(format_args!("control {request:?}"));
        let waits = request.waits_for_ready() && !self.stage.is_ready();
        let reply = if let Some(refusal) = namespace_refusal(&request, self.clients.peer(client)) {
            refusal
        } else if waits && self.stage.is_stopping() {
            // Torn down before it was ready: it never will be.
            Reply::refused(Refusal::Stopping, "stopping: the server is being torn down")
        } else if waits && !self.clients.can_hold(client) {
            // Refused before anything is done: an attach refused here adds no lease.
            Reply::refused(
                Refusal::Busy,
                "busy: the replies that may wait for readiness are all taken; try again",
            )
        } else {
            self.handle(&request, now)
        };
        if let Some(error) = &reply.error {
            diag::note(format_args!("control refused: {error}"));
        }
        if reply.ok
            && waits
            && self
                .clients
                .hold(client, deadline_after(now, request.hold()))
        {
            let clients = &self.clients;
            self.waiting.retain(|&id| clients.is_open(id));
            self.waiting.push(client);
        } else {
            self.clients.reply(client, &reply);
        }
    }

    pub(super) fn handle(&mut self, request: &Request, now: Instant) -> Reply {
        match *request {
            Request::Status { .. } => {}
            // A second stop is impatience, like a second signal: SIGKILL now.
            Request::Stop => self.apply(Input::Stop, now),
            Request::Attach { .. } | Request::Release { .. } if self.stage.is_stopping() => {
                return Reply::refused(
                    Refusal::Stopping,
                    "stopping: the server is being torn down",
                );
            }
            Request::Attach { ref owners, .. } => {
                if let Err((kind, message)) = self.attach(owners) {
                    return Reply::refused(kind, message);
                }
                self.apply(Input::Leases(self.leases.owners().len()), now);
            }
            Request::Release {
                owner: Some(named), ..
            } => match self.leases.release(named) {
                Some(owner) => {
                    diag::note(format_args!("released owner pid {}", owner.pid));
                    self.leases_gone(&[owner]);
                    self.apply(Input::Leases(self.leases.owners().len()), now);
                }
                None => {
                    return Reply::refused(
                        Refusal::NotOwner,
                        format!("pid {} is not an owner", named.pid),
                    );
                }
            },
            Request::Release { owner: None, .. } => {
                let gone = self.leases.clear();
                diag::note(format_args!("released all {} owners", gone.len()));
                self.leases_gone(&gone);
                self.apply(Input::Leases(0), now);
            }
        }
        Reply::ok(self.record.clone())
    }

    /// Adds leases for `owners`: all of them or, with a refusal, none. Each must
    /// still be the process the client named (same start time), must be able to
    /// exit, and must not belong to the server's own tree. A lease an owner
    /// already holds is not written again.
    pub(super) fn attach(&mut self, owners: &[Owner]) -> Result<(), (Refusal, String)> {
        if owners.is_empty() {
            return Err((
                Refusal::NoOwners,
                "attach needs at least one owner pid".into(),
            ));
        }
        let too_many = || {
            (
                Refusal::TooManyOwners,
                format!("a supervisor keeps at most {MAX_LEASES} leases"),
            )
        };
        if owners.len() > MAX_LEASES {
            return Err(too_many());
        }
        let mut found = Vec::new();
        for &named in owners {
            let pid = named.pid;
            if let Some(why) = owner::immortal(pid) {
                return Err((
                    Refusal::ImmortalOwner,
                    format!("owner pid {pid} can never exit ({why})"),
                ));
            }
            if !named.is_alive() {
                return Err((
                    Refusal::OwnerNotRunning,
                    format!(
                        "owner pid {pid} is not running (it exited, or its PID now belongs to another process)"
                    ),
                ));
            }
            if self.guard.as_ref().is_some_and(|g| g.pid() == pid) {
                return Err((
                    Refusal::OwnerInTree,
                    format!(
                        "owner pid {pid} is this supervisor's guard, which never exits while the supervisor lives"
                    ),
                ));
            }
            if self.tree.contains(pid) {
                return Err((
                    Refusal::OwnerInTree,
                    format!(
                        "owner pid {pid} belongs to the server's own tree, which could then never end"
                    ),
                ));
            }
            if !found.contains(&named) {
                found.push(named);
            }
        }
        found.retain(|owner| !self.leases.owners().contains(owner));
        if self.leases.owners().len() + found.len() > MAX_LEASES {
            return Err(too_many());
        }
        if found.is_empty() {
            return Ok(());
        }
        for owner in found {
            diag::note(format_args!("attached owner pid {}", owner.pid));
            self.leases.add(owner);
            self.watch.add(owner);
        }
        self.save_owners();
        Ok(())
    }

    /// After leases were dropped: stop watching those owners, record who is left.
    pub(super) fn leases_gone(&mut self, gone: &[Owner]) {
        self.watch.remove(gone);
        if !gone.is_empty() {
            self.save_owners();
        }
    }

    pub(super) fn save_owners(&mut self) {
        self.record.owners = self.leases.owners().to_vec();
        self.registration.save(&self.record);
    }
}

/// Refuses a request that names PIDs (an `attach`, a `release` of one owner) from
/// a client in another PID namespace: the PID the client says it has must be the
/// one the kernel gives for the peer, translated into ours (none when the peer
/// is outside our namespace). Its PIDs would name other processes here.
fn namespace_refusal(request: &Request, peer: Option<Pid>) -> Option<Reply> {
    let said = match *request {
        Request::Attach { client, .. } => Some(client),
        Request::Release {
            owner: Some(_),
            client,
        } => match client {
            Some(client) => Some(client),
            None => {
                return Some(Reply::refused(
                    Refusal::BadRequest,
                    "bad request: a release that names an owner must name its client",
                ));
            }
        },
        _ => None,
    };
    match said {
        Some(client) if peer != Some(client) => Some(Reply::refused(
            Refusal::ForeignNamespace,
            format!(
                "refused: the client runs in another PID namespace (it is pid {client} there, {} here), so the PIDs it names cannot be read here; run it in the supervisor's namespace",
                peer.map_or("not visible".to_string(), |p| format!("pid {p}"))
            ),
        )),
        _ => None,
    }
}
