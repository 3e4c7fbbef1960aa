//! The `ocwrap` binary: everything lives in the library; see `lib.rs`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(ocwrap::run())
}
