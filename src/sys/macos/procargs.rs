//! The layout of macOS's `sysctl(KERN_PROCARGS2)` answer, parsed without touching the
//! OS: `macos/proc.rs` fetches the bytes, this reads them. Plain portable code, built
//! for the tests on every platform too (see `sys/mod.rs`), so that the Linux unit tests
//! run the parser that macOS's `process_names` (argv[0]) and `environ_has` (the tree
//! marker) rely on.

/// One process's argv and environment as `KERN_PROCARGS2` returned them.
///
/// The kernel copies the strings that exec laid out on the process's stack: `argc` as
/// a C int, the executable path as given to exec, NUL padding up to pointer
/// alignment, `argc` NUL-terminated arguments, then the environment, ended by an
/// empty string (the loader's "apple" strings that follow are not the environment).
/// This is the reading of psutil and of `ps -E`. A process may have rewritten these
/// strings in its own memory since exec, as on Linux's `/proc/PID/cmdline`.
#[derive(Debug, PartialEq, Eq)]
pub struct ProcArgs<'a> {
    pub argv: Vec<&'a [u8]>,
    pub env: Vec<&'a [u8]>,
}

impl<'a> ProcArgs<'a> {
    /// Parses the buffer; `None` when it is too short for `argc` or holds fewer
    /// complete arguments than `argc` says (a truncated copy).
    ///
    /// Only NUL-terminated strings count, so an entry cut off by truncation can never
    /// match as if it were whole (a marker `…=12.3` read from `…=12.34`). Empty
    /// arguments cannot be told from the padding after the executable path, so an
    /// empty argv[0] is skipped like padding, as every reader of this layout does.
    pub fn parse(buf: &'a [u8]) -> Option<ProcArgs<'a>> {
        let argc = i32::from_ne_bytes(buf.get(..4)?.try_into().ok()?);
        let argc = usize::try_from(argc).ok()?;
        let mut strings: Vec<&[u8]> = buf[4..].split(|&b| b == 0).collect();
        // `split` always yields what follows the last NUL: unterminated, so dropped.
        strings.pop();
        let mut strings = strings.into_iter();
        strings.next()?; // the executable path, as given to exec
        let mut strings = strings.skip_while(|s| s.is_empty());
        let argv: Vec<&[u8]> = strings.by_ref().take(argc).collect();
        if argv.len() < argc {
            return None;
        }
        let env = strings.take_while(|s| !s.is_empty()).collect();
        Some(ProcArgs { argv, env })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(argc: i32, strings: &[u8]) -> Vec<u8> {
        let mut buf = argc.to_ne_bytes().to_vec();
        buf.extend_from_slice(strings);
        buf
    }

    #[test]
    fn argv_and_environment_follow_the_padded_executable_path() {
        let buf = buffer(
            2,
            b"/opt/bin/claude\0\0\0\0\0claude\0--resume\0HOME=/Users/u\0OCWRAP_TREE=7.42\0\0executable_path=/opt/bin/claude\0",
        );
        let args = ProcArgs::parse(&buf).unwrap();
        assert_eq!(args.argv, [&b"claude"[..], b"--resume"]);
        assert_eq!(args.env, [&b"HOME=/Users/u"[..], b"OCWRAP_TREE=7.42"]);
    }

    #[test]
    fn a_truncated_entry_never_counts() {
        let buf = buffer(1, b"/bin/sh\0sh\0OCWRAP_TREE=7.42\0OCWRAP_TREE=7.4");
        let args = ProcArgs::parse(&buf).unwrap();
        assert_eq!(args.env, [&b"OCWRAP_TREE=7.42"[..]]);
    }

    #[test]
    fn fewer_arguments_than_argc_is_no_answer() {
        assert_eq!(ProcArgs::parse(&buffer(3, b"/bin/sh\0sh\0-c\0")), None);
        assert_eq!(ProcArgs::parse(&buffer(-1, b"/bin/sh\0sh\0")), None);
        assert_eq!(ProcArgs::parse(&[1, 0]), None);
    }

    #[test]
    fn no_environment_is_an_empty_one() {
        let buf = buffer(1, b"/bin/true\0\0\0true\0\0");
        let args = ProcArgs::parse(&buf).unwrap();
        assert_eq!(args.argv, [&b"true"[..]]);
        assert!(args.env.is_empty());
    }
}
