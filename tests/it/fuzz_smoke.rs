//! The fuzz targets (`fuzz/`, bodies in `salve::fuzzing`) run briefly on every
//! `cargo test`, so that they cannot rot: every committed seed in `fuzz/seeds/<target>/`,
//! then a few thousand pseudo-random mutations of them (deterministic: a failure
//! reproduces, and prints the input that made it). The long runs are the fuzzers'
//! (docs/development.md, "Fuzzing"); what they find that fails becomes a regression test below.

use salve::fuzzing;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The committed seeds of one target, in file-name order.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable seeds folder").path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// xorshift64: enough randomness to mutate inputs, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that parsers of these formats give meaning to: dropped in, they reach
/// further than random bytes do.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"=",
    b"=~",
    b"!~",
    b"\n",
    b"-",
    b"null",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"1e400",
    b"\\u0000",
    b"\xff",
    b"per",
    b"24:00",
    b"-31",
    b"100000y",
    b"9999-12-31T23:59:59Z",
    b"+262143-12-31T23:59:59Z",
    b"loop {}",
    b"\"firing\"",
    b"\"resolved\"",
];

/// One to four stacked changes: a byte replaced, bytes inserted or removed, a chunk
/// repeated, a token inserted, or a piece of another seed spliced in.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 => out.insert(at, rng.next() as u8),
            2 => {
                let end = (at + rng.below(16) + 1).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(32) + 1).min(out.len());
                let chunk = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
            4 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let end = (from + rng.below(64) + 1).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
        }
    }
    out
}

/// Runs `target` on every seed and on `mutations` mutated ones; a failure names the
/// input that made it.
fn smoke(target: &str, run: fn(&[u8]), mutations: usize) {
    let seeds = seeds(target);
    let mut rng = Rng(0x5a17_e5ee_d000_0001 ^ target.len() as u64);
    let check = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
            panic!(
                "fuzzing::{target} failed on {:?}",
                String::from_utf8_lossy(input)
            );
        }
    };
    for seed in &seeds {
        check(seed);
    }
    for _ in 0..mutations {
        let seed = &seeds[rng.below(seeds.len())];
        check(&mutate(&mut rng, &seeds, seed));
    }
}

#[test]
fn fuzz_smoke_alertmanager_payload() {
    smoke("alertmanager_payload", fuzzing::alertmanager_payload, 2000);
}

#[test]
fn fuzz_smoke_native_payload() {
    smoke("native_payload", fuzzing::native_payload, 2000);
}

#[test]
fn fuzz_smoke_matchers() {
    smoke("matchers", fuzzing::matchers, 3000);
}

#[test]
fn fuzz_smoke_time_intervals() {
    smoke("time_intervals", fuzzing::time_intervals, 2000);
}

#[test]
fn fuzz_smoke_durations_and_rates() {
    smoke("durations_and_rates", fuzzing::durations_and_rates, 5000);
}

#[test]
fn fuzz_smoke_rule_and_plan() {
    smoke("rule_and_plan", fuzzing::rule_and_plan, 150);
}

#[test]
fn fuzz_smoke_checkpoint() {
    smoke("checkpoint", fuzzing::checkpoint, 1000);
}

#[test]
fn fuzz_smoke_trail_line() {
    smoke("trail_line", fuzzing::trail_line, 600);
}

/// Writes the checkpoint seeds: the state the trail seeds leave, as a whole file
/// (first byte 0) and as a body alone (first byte 1; the target frames it). Run by
/// hand when the checkpoint format changes:
/// `cargo test --test tests fuzz_smoke_write_checkpoint_seeds -- --ignored`.
#[test]
#[ignore]
fn fuzz_smoke_write_checkpoint_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/checkpoint");
    std::fs::create_dir_all(&dir).expect("seeds folder");
    let settings = salve::config::Config::defaults().policy;
    let mut state = salve::policy::PolicyState::new(settings);
    for seed in seeds("trail_line") {
        for line in seed.split(|b| *b == b'\n') {
            if let Ok(record) = salve::audit::AuditRecord::from_line(line) {
                salve::engine::fold(&mut state, &record);
            }
        }
    }
    let position = salve::audit::TrailPosition {
        inode: 42,
        offset: 4096,
    };
    let bytes = salve::engine::checkpoint_bytes(&state, position).expect("encodes");
    let header = 52;
    std::fs::write(dir.join("trail-state"), [&[0u8][..], &bytes].concat()).expect("write");
    std::fs::write(
        dir.join("trail-state-body"),
        [&[1u8][..], &bytes[header..]].concat(),
    )
    .expect("write");
}
