//! The one integration-test binary: every test runs the built `ocwrap` (and the
//! `ocwrap-fixture` server) as real processes and asserts on what happened to them.
//!
//! The Unix suite (signals, process groups, pidfds, `/proc`) runs on Linux; the
//! Windows suite (job objects, process handles, named pipes) runs under Wine
//! (`bash shell/windows.sh test`).

#[cfg(unix)]
mod suite;
#[cfg(unix)]
mod support;
#[cfg(windows)]
mod windows;
