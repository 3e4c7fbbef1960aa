//! The one integration-test binary: every test runs the built `ocwrap` (and the
//! `ocwrap-fixture` server) as real processes and asserts on what happened to them.

mod suite;
mod support;
