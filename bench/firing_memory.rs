//! What the firing set behind `firing()` costs per alert it remembers, through a storm:
//! distinct alerts shaped as `bench/storm.lua` makes them (7 labels, an instance of
//! their own) fill the set to its bound (`[policy] max_firing_alerts`, 500,000 by
//! default here) and then keep coming, so the oldest are evicted as new ones enter,
//! as in a storm that lasts. After each wave it prints the set's size and the growth
//! of RSS since the start per alert held (jemalloc, as salve runs).
//!
//! `cargo run --release --example firing_memory [BOUND] [WAVES]`

use salve::event::{Event, Fingerprint, Labels, Status};
use salve::policy::{PolicySettings, PolicyState};
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn rss_kib() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc/self/status"))
}

fn event(n: u64) -> Event {
    let names = [
        "HighLatency0",
        "DiskFull1",
        "CPUHigh2",
        "MemoryPressure3",
        "TargetDown0",
    ];
    let regions = ["eu-west-1", "eu-central-1", "us-east-1"];
    let labels: Labels = [
        ("alertname", names[(n % 5) as usize].to_string()),
        ("instance", format!("host-{}:9100", 10_000_000_000 + n)),
        ("job", ["node", "app"][(n % 2) as usize].to_string()),
        (
            "severity",
            ["critical", "warning", "warning"][(n % 3) as usize].to_string(),
        ),
        ("namespace", format!("team-{}", n % 8)),
        ("service", format!("svc-{}", n % 50)),
        ("region", regions[(n % 3) as usize].to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let now = chrono::Utc::now();
    Event {
        id: String::new(),
        source: "alertmanager".into(),
        status: Status::Firing,
        fingerprint: Fingerprint(format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
        labels,
        annotations: Labels::new(),
        starts_at: now,
        ends_at: None,
        generator_url: String::new(),
        received_at: now,
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let number = |arg: Option<String>, default: u64| match arg {
        None => Ok(default),
        Some(a) => a
            .parse()
            .map_err(|_| std::io::Error::other(format!("not a number: {a}"))),
    };
    let bound = number(args.next(), 500_000)?;
    let waves = number(args.next(), 8)?;
    let mut state = PolicyState::new(PolicySettings {
        max_firing_alerts: bound as usize,
        ..PolicySettings::default()
    });
    let base = rss_kib()?;
    let wave = (bound / 2).max(1);
    println!("| alerts sent | firing | strings | RSS growth (MiB) | per alert held (bytes) |");
    println!("| --- | --- | --- | --- | --- |");
    for w in 0..waves {
        for n in w * wave..(w + 1) * wave {
            state.observe_event(&event(n));
        }
        // jemalloc gives back what was freed after a second (.cargo/config.toml).
        std::thread::sleep(Duration::from_millis(1500));
        let sizes = state.sizes();
        let grown = rss_kib()?.saturating_sub(base);
        println!(
            "| {} | {} | {} | {:.1} | {} |",
            (w + 1) * wave,
            sizes.firing,
            sizes.firing_strings,
            grown as f64 / 1024.0,
            grown * 1024 / sizes.firing.max(1) as u64
        );
    }
    Ok(())
}
