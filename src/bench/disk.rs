//! The disk watcher: while a benchmark run goes on, samples the block
//! devices' counters (`/proc/diskstats`) every [`EVERY`] and reports when a
//! device held I/O without completing any for [`HELD`] or more. A commit
//! that waits that long shows the disk's stall, not the program's; seeing
//! both at the same instant tells them apart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the counters are read.
pub const EVERY: Duration = Duration::from_millis(10);

/// The shortest hold reported (two and a half sampling periods, so a
/// request that merely spans two samples is not one).
pub const HELD: Duration = Duration::from_millis(25);

/// One reading of one device: requests completed so far (reads, writes,
/// discards and flushes) and requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    completed: u64,
    in_flight: u64,
}

/// Reads `/proc/diskstats`' text: each whole device's counters (partitions
/// of a listed device, loop and RAM devices left out).
fn parse(text: &str) -> Vec<(String, Counters)> {
    let rows: Vec<(&str, Vec<u64>)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(2);
            let name = fields.next()?;
            let numbers: Vec<u64> = fields.map_while(|f| f.parse().ok()).collect();
            (numbers.len() >= 11).then_some((name, numbers))
        })
        .collect();
    let partition_of = |name: &str| {
        rows.iter().any(|(other, _)| {
            name.len() > other.len() && name.starts_with(other) && {
                let rest = &name[other.len()..];
                let digits = rest.strip_prefix('p').unwrap_or(rest);
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            }
        })
    };
    rows.iter()
        .filter(|(name, _)| !name.starts_with("loop") && !name.starts_with("ram") && !partition_of(name))
        .map(|(name, n)| {
            // reads, writes, then (newer kernels) discards and flushes.
            let completed = n[0] + n[4] + n.get(11).copied().unwrap_or(0) + n.get(15).copied().unwrap_or(0);
            (name.to_string(), Counters { completed, in_flight: n[8] })
        })
        .collect()
}

/// The holds in one device's readings (time from the run's start, counters):
/// each run of readings with requests in flight and none completed, from
/// its first reading to the reading that saw a completion, if at least
/// [`HELD`]. Returns (when it began, how long).
fn holds(readings: &[(Duration, Counters)]) -> Vec<(Duration, Duration)> {
    let mut found = Vec::new();
    let mut since: Option<(Duration, u64)> = None;
    for &(at, c) in readings {
        match since {
            Some((_, completed)) if c.completed == completed && c.in_flight > 0 => continue,
            Some((start, _)) => {
                if at - start >= HELD {
                    found.push((start, at - start));
                }
                since = None;
            }
            None => {}
        }
        if c.in_flight > 0 {
            since = Some((at, c.completed));
        }
    }
    found
}

/// A running watcher; [`Watcher::stop`] ends it and returns what it saw
/// (dropped, it just ends).
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Readings>>,
}

/// Every device's readings, by name.
type Readings = HashMap<String, Vec<(Duration, Counters)>>;

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a watcher saw: per device, the holds of [`HELD`] or more (when,
/// from the run's start; how long).
pub type Held = Vec<(String, Vec<(Duration, Duration)>)>;

impl Watcher {
    /// Starts watching, on a thread of its own; times are from `base`.
    /// `None` where `/proc/diskstats` cannot be read (not Linux).
    pub fn start(base: Instant) -> Option<Watcher> {
        std::fs::read_to_string("/proc/diskstats").ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Readings::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string("/proc/diskstats") {
                    let at = base.elapsed();
                    for (name, c) in parse(&text) {
                        seen.entry(name).or_default().push((at, c));
                    }
                }
                std::thread::sleep(EVERY);
            }
            seen
        });
        Some(Watcher { stop, thread: Some(thread) })
    }

    /// Stops watching; the devices that held I/O, by name.
    pub fn stop(mut self) -> Held {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let mut held: Held =
            seen.into_iter().map(|(name, readings)| (name, holds(&readings))).filter(|(_, h)| !h.is_empty()).collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "\
 254       0 vda 37304 6741 3317986 25553 227465 31446 7451304 37675 1 20748 67461 11820 73 1247136 865 83525 3366
 254       1 vda1 37000 6741 3300000 25000 227000 31446 7450000 37600 1 20700 67400 11820 73 1247136 865 0 0
 259       0 nvme0n1 10 0 80 1 20 0 160 2 0 3 3
 259       1 nvme0n1p1 10 0 80 1 20 0 160 2 0 3 3
   7       0 loop0 5 0 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn whole_devices_are_read_and_their_partitions_loops_and_short_lines_left_out() {
        let got = parse(&format!("{STATS}   8 0 sdz 1 2 3\n"));
        assert_eq!(
            got,
            vec![
                ("vda".to_string(), Counters { completed: 37304 + 227465 + 11820 + 83525, in_flight: 1 }),
                // An older kernel's line: no discard or flush counters.
                ("nvme0n1".to_string(), Counters { completed: 30, in_flight: 0 }),
            ]
        );
    }

    fn at(ms: u64, completed: u64, in_flight: u64) -> (Duration, Counters) {
        (Duration::from_millis(ms), Counters { completed, in_flight })
    }

    #[test]
    fn a_hold_is_io_in_flight_with_nothing_completed_from_its_first_reading_to_the_completion() {
        let readings = [
            at(0, 100, 0),
            // Busy but completing: not a hold.
            at(10, 103, 1),
            at(20, 106, 1),
            // In flight at 20 ms and nothing completes until 330: held
            // from 20.
            at(30, 106, 1),
            at(40, 106, 1),
            at(320, 106, 2),
            at(330, 109, 0),
            // Two readings 10 ms apart: too short to report.
            at(340, 109, 1),
            at(350, 109, 1),
            at(360, 112, 0),
        ];
        assert_eq!(holds(&readings), vec![(Duration::from_millis(20), Duration::from_millis(310))]);
        assert!(holds(&readings[..5]).is_empty(), "a hold still going when the run ends is not reported");
    }
}
