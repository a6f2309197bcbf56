//! What this build of salve is, as `build.rs` found it: `salve --version` and the
//! `salve_build_info` metric say the same.

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit, 12 hex digits (`+dirty` when the tree had changes), or `unknown`.
pub(crate) const REVISION: &str = env!("SALVE_BUILD_REVISION");
/// The UTC day of the build, `YYYY-MM-DD`.
pub(crate) const BUILD_DATE: &str = env!("SALVE_BUILD_DATE");
/// The compiler's version, e.g. `1.95.0`.
pub(crate) const RUSTC: &str = env!("SALVE_BUILD_RUSTC");

/// What `--version` prints after the name.
pub(crate) const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SALVE_BUILD_REVISION"),
    ", built ",
    env!("SALVE_BUILD_DATE"),
    ", rustc ",
    env!("SALVE_BUILD_RUSTC"),
    ")"
);
