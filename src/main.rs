//! The `ocwrap` binary: everything lives in the library; see `lib.rs`.

fn main() {
    // `exit` with the whole code: on Windows a server's 32-bit code is passed on
    // as it is (see `exit`). Everything `run` holds is dropped by now; `exit`
    // flushes standard output.
    std::process::exit(ocwrap::run())
}
