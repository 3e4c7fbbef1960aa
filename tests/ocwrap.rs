//! The one integration-test binary: every test runs the built `ocwrap` (and the
//! `ocwrap-fixture` server) as real processes and asserts on what happened to them.
//!
//! One suite for every platform: it runs natively on Linux, under Wine for
//! Windows (`bash shell/windows.sh test`) and on an emulated arm64 Linux kernel
//! (`shell/arm64vm.sh`), and is type-checked for macOS. A scenario that only one
//! family can show (signals, process groups, other users, FIFOs and Unix sockets;
//! job objects, `%LOCALAPPDATA%`) is marked `cfg(unix)` or `cfg(windows)`; one that
//! a platform could show but cannot here is `ignore`d there, with the reason.

mod suite;
mod support;
