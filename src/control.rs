//! The control socket `<stem>.sock` (SPEC §4): how `up`, `release`, `status` and
//! `stop` talk to a running supervisor.
//!
//! One request per connection: a JSON object on one line (`{"op":"attach",
//! "owners":[123]}`, `{"op":"release","owner":123}` or `{"op":"release"}` for all,
//! `{"op":"status"}`, `{"op":"stop"}`), answered by one line (`{"ok":true,
//! "record":{…}}` or `{"ok":false,"error":"…"}`). The socket lives in the `0700`
//! state dir; a peer of another user is refused all the same (`SO_PEERCRED`), and a
//! message over 64 KiB is refused unread. A connection gets [`IO_TIMEOUT`] to say
//! its piece, so a stuck client cannot stall the supervisor for long.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::Pid;
use crate::record::Record;
use crate::sys;

/// Longest request accepted, newline included.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// How long either side waits for the other to read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Adds leases for these owners.
    Attach {
        owners: Vec<Pid>,
    },
    /// Drops the lease of `owner`, or every lease when it is absent.
    Release {
        #[serde(default)]
        owner: Option<Pid>,
    },
    Status,
    Stop,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

impl Reply {
    pub fn ok(record: Record) -> Reply {
        Reply {
            ok: true,
            error: None,
            record: Some(record),
        }
    }

    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(message.into()),
            record: None,
        }
    }
}

/// The supervisor's listening socket.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

/// One accepted connection whose request has been read (or refused).
pub struct Connection {
    stream: UnixStream,
    pub request: Result<Request, String>,
}

impl ControlSocket {
    /// Binds `path`, replacing a socket left by a dead supervisor of the same name
    /// (the caller holds the name's lock, so no live one can own it).
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Accepts every pending connection and reads its request.
    pub fn accept_pending(&self) -> Vec<Connection> {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = self.listener.accept() {
            let request = read_request(&stream);
            connections.push(Connection { stream, request });
        }
        connections
    }

    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Connection {
    pub fn reply(mut self, reply: &Reply) {
        if let Ok(mut line) = serde_json::to_vec(reply) {
            line.push(b'\n');
            let _ = self.stream.write_all(&line);
        }
    }
}

fn read_request(stream: &UnixStream) -> Result<Request, String> {
    match sys::peer_uid(stream) {
        Ok(uid) if uid == sys::effective_uid() => {}
        Ok(uid) => {
            return Err(format!(
                "refused: peer uid {uid} is not this supervisor's user"
            ));
        }
        Err(e) => return Err(format!("refused: cannot identify the peer: {e}")),
    }
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    let mut reader = BufReader::new(stream).take(MAX_MESSAGE as u64 + 1);
    reader
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read the request: {e}"))?;
    if line.len() > MAX_MESSAGE {
        return Err(format!("message over {} KiB refused", MAX_MESSAGE / 1024));
    }
    serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}"))
}

/// Sends one request to the supervisor behind `path` and returns its reply.
pub fn request(path: &Path, request: &Request) -> io::Result<Reply> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .take(16 * MAX_MESSAGE as u64)
        .read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_wire_form() {
        let attach: Request = serde_json::from_str(r#"{"op":"attach","owners":[12,13]}"#).unwrap();
        assert_eq!(
            attach,
            Request::Attach {
                owners: vec![Pid::new(12).unwrap(), Pid::new(13).unwrap()]
            }
        );
        let all: Request = serde_json::from_str(r#"{"op":"release"}"#).unwrap();
        assert_eq!(all, Request::Release { owner: None });
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"attach","owners":[0]}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Request::Stop).unwrap(),
            r#"{"op":"stop"}"#
        );
    }
}
