//! Memory: nothing is given back after start-up (docs/DESIGN.md, "Platform seam").

/// Linux unmaps the start-up pages of its own code once the server is ready;
/// Windows keeps them (its working set is trimmed by the memory manager).
pub fn release_startup_pages() {}
