//! Memory, on Linux: once start-up is over, the supervisor gives back the pages of
//! its own code that start-up mapped (`madvise(MADV_DONTNEED)` on the binary's
//! read-only segments). See `docs/DESIGN.md`, section "Platform seam".

/// Unmaps from this process the pages of ocwrap's own read-only segments (code and
/// constants) that are mapped now.
///
/// Start-up (argument parsing, the spawn, the first record) runs code that an idle
/// supervisor never runs again, and the kernel maps file pages around every fault
/// (fault-around, 64 KiB by default), so a freshly started supervisor maps nearly
/// its whole binary. Called once start-up is over, this leaves mapped only the
/// pages the loop touches from then on. The pages stay in the page cache; nothing
/// is written, and a page that is needed again is mapped again on its next use.
/// Writable segments (data, relocated read-only data) are never touched: their
/// pages are private copies that cannot be read back from the file.
pub fn release_startup_pages() {
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let Ok(page) = usize::try_from(page) else {
        return;
    };
    if page == 0 {
        return;
    }
    // SAFETY: dl_iterate_phdr calls `each` with a pointer to a valid
    // dl_phdr_info for every loaded object, the executable first; `data` is a
    // pointer to `page`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(each), (&raw const page).cast_mut().cast());
    }

    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `page` passed above, and `info` points to the
        // loader's description of the executable, valid for this call; its
        // `dlpi_phdr` array has `dlpi_phnum` entries.
        let (page, info) = unsafe { (*data.cast::<usize>(), &*info) };
        // SAFETY: as above: a valid array of `dlpi_phnum` program headers.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        for header in headers {
            if header.p_type != libc::PT_LOAD || header.p_flags & libc::PF_W != 0 {
                continue;
            }
            let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
            let end = start.wrapping_add(header.p_memsz as usize);
            // Whole pages inside the segment only: a page shared with a writable
            // segment keeps its private contents.
            let first = start.div_ceil(page) * page;
            let last = end / page * page;
            if last > first {
                // SAFETY: [first, last) lies within a read-only, file-backed
                // mapping of the executable whose pages were never written:
                // MADV_DONTNEED unmaps them, and the next access reads them back
                // from the file, unchanged.
                unsafe {
                    libc::madvise(
                        first as *mut libc::c_void,
                        last - first,
                        libc::MADV_DONTNEED,
                    )
                };
            }
        }
        // The executable is the first object; the rest (the vDSO, shared
        // libraries of a dynamic build) are not ours to trim.
        1
    }
}
