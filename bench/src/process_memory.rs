//! The benchmark process's own memory, from `/proc/self/status` (Linux):
//! the resident set now (`VmRSS`) and its peak (`VmHWM`), and a reset of
//! the peak so that each measured run reports its own; and its CPU time.

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`, ...) in MiB; NaN where
/// the file or the field is missing (not Linux).
pub fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU time (user + system, s) the process's threads have used so far, from
/// `/proc/self/stat` (fields 14 and 15, in clock ticks of 1/100 s); NaN where
/// that file is missing (not Linux). The difference over a run is the run's
/// CPU time, which, unlike its wall time, does not grow when other processes
/// share the cores.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Resets `VmHWM` to the current RSS (writing `5` to
/// `/proc/self/clear_refs`, Linux ≥ 4.0), so the next peak is the next
/// run's own. Does nothing where that is not possible.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = cpu_seconds() - before;
        assert!(used >= 0.1, "{used} CPU-s over 300 ms of spinning");
    }

    #[test]
    fn the_peak_is_at_least_the_resident_set_and_grows_with_an_allocation() {
        reset_peak();
        // The peak since the reset covers the resident set read before it.
        let rss = status_mib("VmRSS");
        let before = status_mib("VmHWM");
        assert!(before >= rss, "peak {before} MiB, resident {rss} MiB");
        // Touch 64 MiB so it becomes resident.
        let block = vec![1u8; 64 << 20];
        let after = status_mib("VmHWM");
        assert!(after >= before + 60.0, "peak {before} -> {after} MiB");
        assert_eq!(block.iter().map(|&b| b as usize).sum::<usize>(), 64 << 20);
    }
}
