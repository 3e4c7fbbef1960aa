//! Memory, on macOS: nothing is given back after start-up (Linux unmaps the pages of
//! its own code that start-up mapped; nothing was measured on a Mac). See
//! `docs/DESIGN.md`, section "Platform seam".

/// Linux unmaps the start-up pages of its own code once the server is ready; macOS
/// keeps them (not designed for it: nothing measured there).
pub fn release_startup_pages() {}
