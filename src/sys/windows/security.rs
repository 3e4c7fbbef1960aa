//! Users and private objects: a user's SID, the user a process or a file
//! belongs to, and the security descriptor that admits only the current user (for
//! the state dir and the pipes). See `docs/DESIGN.md`, section "Platform seam".

use std::io;
use std::mem::size_of;
use std::os::windows::io::{FromRawHandle, OwnedHandle, RawHandle};
use std::path::Path;

use windows_sys::Win32::Foundation::{HANDLE, HLOCAL, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    GetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    GetLengthSid, GetTokenInformation, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::{check, raw, wide};

/// Who runs a process: a user's security identifier.
pub type UserId = UserSid;

/// The user this process runs as. Read once; if it cannot be read, an empty SID
/// that no peer ever matches (every control client is then refused).
pub fn current_user() -> UserId {
    static CURRENT: std::sync::OnceLock<UserSid> = std::sync::OnceLock::new();
    CURRENT
        .get_or_init(|| UserSid::current().unwrap_or(UserSid(Vec::new())))
        .clone()
}

/// A user's security identifier: who owns a process or a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSid(pub(super) Vec<u8>);

impl UserSid {
    /// The user that ocwrap runs as (its process token's user).
    pub(super) fn current() -> io::Result<UserSid> {
        // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no closing.
        token_user(unsafe { GetCurrentProcess() })
    }

    /// The SID's string form (`S-1-5-21-…`): unique per account, and made only of
    /// characters that are safe in a pipe name.
    pub(super) fn to_string_form(&self) -> io::Result<String> {
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: a valid SID (bytes copied from a token); the call allocates the
        // string with LocalAlloc and stores its address in `text`.
        check(unsafe { ConvertSidToStringSidW(self.0.as_ptr() as PSID, &mut text) })?;
        // SAFETY: on success `text` is a NUL-terminated UTF-16 string.
        let len = unsafe { (0..).take_while(|&i| *text.add(i) != 0).count() };
        // SAFETY: `len` u16s were just counted inside the string.
        let form = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) });
        // SAFETY: allocated by the call above with LocalAlloc, freed once.
        unsafe { LocalFree(text as HLOCAL) };
        Ok(form)
    }
}

impl std::fmt::Display for UserSid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_string_form() {
            Ok(text) => f.write_str(&text),
            Err(_) => f.write_str("(unreadable SID)"),
        }
    }
}

/// The user of the process behind `process` (a handle with query rights).
pub(super) fn token_user(process: HANDLE) -> io::Result<UserSid> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: a valid process handle; on success `token` is a new handle for us.
    check(unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) })?;
    // SAFETY: OpenProcessToken succeeded, so the handle is ours alone.
    let token = unsafe { OwnedHandle::from_raw_handle(token as RawHandle) };
    let mut needed = 0u32;
    // SAFETY: asks only for the size; no buffer is written.
    unsafe { GetTokenInformation(raw(&token), TokenUser, std::ptr::null_mut(), 0, &mut needed) };
    // usize words keep the buffer aligned for TOKEN_USER.
    let mut buffer = vec![0usize; (needed as usize).div_ceil(size_of::<usize>()).max(1)];
    // SAFETY: a buffer of at least `needed` bytes, aligned, living for the call.
    check(unsafe {
        GetTokenInformation(
            raw(&token),
            TokenUser,
            buffer.as_mut_ptr().cast(),
            (buffer.len() * size_of::<usize>()) as u32,
            &mut needed,
        )
    })?;
    // SAFETY: the call filled a TOKEN_USER at the start of the buffer; its SID
    // points inside the same buffer, which is still alive here.
    let sid = unsafe { (*(buffer.as_ptr() as *const TOKEN_USER)).User.Sid };
    Ok(UserSid(sid_bytes(sid)))
}

/// Copies a SID out of the memory that holds it.
pub(super) fn sid_bytes(sid: PSID) -> Vec<u8> {
    // SAFETY: `sid` points at a valid SID (from a token or a security descriptor).
    let len = unsafe { GetLengthSid(sid) } as usize;
    // SAFETY: a valid SID is `len` bytes long.
    unsafe { std::slice::from_raw_parts(sid as *const u8, len) }.to_vec()
}

/// A security descriptor that admits only the current user (a protected DACL with
/// one entry granting that user everything): for the control pipe, and, inherited,
/// for the state directory and what is made in it.
pub(super) struct PrivateSecurity(PSECURITY_DESCRIPTOR);

impl PrivateSecurity {
    pub(super) fn new(user: &UserSid, inherited: bool) -> io::Result<PrivateSecurity> {
        let flags = if inherited { "OICI" } else { "" };
        let sddl = wide(format!("D:P(A;{flags};GA;;;{})", user.to_string_form()?));
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a NUL-terminated SDDL string; on success the call allocates the
        // descriptor with LocalAlloc, and `Drop` frees it.
        check(unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        })?;
        Ok(PrivateSecurity(sd))
    }

    /// Attributes pointing at the descriptor; valid while `self` lives.
    pub(super) fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.0,
            bInheritHandle: 0,
        }
    }
}

impl Drop for PrivateSecurity {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.0 as HLOCAL) };
    }
}

/// The owner of a file or directory.
pub(super) fn file_owner(path: &Path) -> io::Result<UserSid> {
    let path = wide(path);
    let mut owner: PSID = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated path; on success `owner` points into `sd`, which the
    // call allocated with LocalAlloc and which is freed below, after the copy.
    let rc = unsafe {
        GetNamedSecurityInfoW(
            path.as_ptr(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let sid = UserSid(sid_bytes(owner));
    // SAFETY: allocated by GetNamedSecurityInfoW, freed once, not used after.
    unsafe { LocalFree(sd as HLOCAL) };
    Ok(sid)
}
