//! What `salve --version` and `salve_build_info` say about the build: the git revision,
//! the build date and the compiler, as `SALVE_BUILD_REVISION`, `SALVE_BUILD_DATE` and
//! `SALVE_BUILD_RUSTC` for `env!`. A build without `.git` (a source tarball, a
//! container build context) sets the first two itself or gets `unknown` and today.
//!
//! A build also leaves beside the binary, in `target/PROFILE/salve-libs/`, the
//! shared libraries every Rust program for x86_64 Linux with glibc loads (the C
//! library, libm, libgcc_s and the dynamic loader): the container image (`Dockerfile`,
//! `FROM scratch`) is the binary and these, and a Dockerfile can copy only what is in
//! its build context.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SALVE_BUILD_REVISION");
    println!("cargo:rerun-if-env-changed=SALVE_BUILD_DATE");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    watch_git();
    let revision = env_set("SALVE_BUILD_REVISION")
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    let date = env_set("SALVE_BUILD_DATE").unwrap_or_else(build_date);
    println!("cargo:rustc-env=SALVE_BUILD_REVISION={revision}");
    println!("cargo:rustc-env=SALVE_BUILD_DATE={date}");
    println!("cargo:rustc-env=SALVE_BUILD_RUSTC={}", rustc_version());
    image_libraries();
}

/// The libraries the release binary loads, as `ldd target/release/salve` lists them
/// (the image test checks that it needs no other).
const LIBRARIES: [(&str, &str); 4] = [
    ("lib", "libc.so.6"),
    ("lib", "libm.so.6"),
    ("lib", "libgcc_s.so.1"),
    ("lib64", "ld-linux-x86-64.so.2"),
];
const LIBRARY_DIRS: [&str; 3] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
];

fn image_libraries() {
    let cfg = |key: &str| std::env::var(key).unwrap_or_default();
    if cfg("CARGO_CFG_TARGET_OS") != "linux"
        || cfg("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || cfg("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return;
    }
    // OUT_DIR is target/PROFILE/build/salve-HASH/out.
    let out = std::path::PathBuf::from(cfg("OUT_DIR"));
    let Some(profile_dir) = out.ancestors().nth(3) else {
        return;
    };
    for (folder, name) in LIBRARIES {
        let Some(found) = LIBRARY_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.exists())
        else {
            println!("cargo:warning={name} not found in {LIBRARY_DIRS:?}: the container image cannot be built");
            continue;
        };
        println!("cargo:rerun-if-changed={}", found.display());
        let to = profile_dir.join("salve-libs").join(folder);
        // Copying follows the symbolic link to the library itself.
        let copied =
            std::fs::create_dir_all(&to).and_then(|()| std::fs::copy(&found, to.join(name)));
        if let Err(e) = copied {
            println!(
                "cargo:warning=cannot copy {} for the container image: {e}",
                found.display()
            );
        }
    }
}

fn env_set(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Reruns when HEAD moves (a commit, a checkout) or the index changes (what `+dirty`
/// reads), not at every build. Paths come from git, as a worktree's `.git` is a file.
/// A missing path would make cargo rerun every time, so only existing ones are named.
fn watch_git() {
    let mut paths = vec!["HEAD".to_string(), "index".to_string()];
    paths.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    paths.push("packed-refs".to_string());
    for path in paths {
        if let Some(file) = git(&["rev-parse", "--path-format=absolute", "--git-path", &path]) {
            if Path::new(&file).exists() {
                println!("cargo:rerun-if-changed={file}");
            }
        }
    }
    // A source edit is what makes a tree dirty between two commits.
    println!("cargo:rerun-if-changed=src");
}

/// The commit, 12 hex digits, `+dirty` when tracked files differ from it.
fn git_revision() -> Option<String> {
    let revision = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Without optional locks git does not rewrite the index, which would rerun this.
    let dirty = git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .is_some_and(|changes| !changes.is_empty());
    Some(if dirty {
        format!("{revision}+dirty")
    } else {
        revision
    })
}

/// The UTC day of `SOURCE_DATE_EPOCH` (reproducible builds), else of now.
fn build_date() -> String {
    let seconds = match env_set("SOURCE_DATE_EPOCH") {
        Some(epoch) => epoch
            .parse::<i64>()
            .expect("SOURCE_DATE_EPOCH is a number of seconds"),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs() as i64,
    };
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm), so
/// the build script needs no date crate.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `1.95.0` from `rustc 1.95.0 (59807616e 2026-04-14)`, asked of the compiler cargo
/// builds with.
fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = Command::new(rustc)
        .arg("--version")
        .output()
        .expect("rustc --version runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or("unknown")
        .to_string()
}
