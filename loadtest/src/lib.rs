//! Tools that drive a running stack: a data generator (`feedgen`), a benchmark
//! (`feedbench`), a crash-recovery benchmark (`feedrecovery`), an overload
//! benchmark (`feedoverload`), the friends feed past Redis (`feeddeep`) and the writer
//! against raw COPY (`feedingest`), and memory over a long run with nobody scraping
//! metrics (`feedsoak`). They publish straight
//! onto the feed topic with the product's own envelope, so the data goes through the
//! real writer and fan-out.

pub mod bench;
pub mod deep;
pub mod fanout_costs;
pub mod gen;
pub mod ingest;
pub mod load;
pub mod overload;
pub mod recovery;
pub mod seed;
pub mod soak;

/// `common` with its own topics, groups and Redis key prefix (`<label>-…-<random id>`),
/// so a benchmark that runs its own services shares only the stores with anything
/// else. Migrations are left to the caller.
pub fn scratch(common: &feed_core::config::CommonConfig, label: &str) -> feed_core::config::CommonConfig {
    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut common = common.clone();
    common.feed_topic = format!("{label}-feed-{id}");
    common.events_topic = format!("{label}-events-{id}");
    common.analytics_topic = format!("{label}-analytics-{id}");
    common.writer_group = format!("{label}-writer-{id}");
    common.fanout_group = format!("{label}-fanout-{id}");
    common.redis_key_prefix = format!("{label}:{id}:");
    common.run_migrations = false;
    common
}

/// A `kB` line of a process's `/proc/<pid>/status` text (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The resident set size of process `pid`, MiB (0 if it is gone).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status_kib(&status, "VmRSS").unwrap_or(0) as f64 / 1024.0
}

/// `field` (`VmRSS`, `VmHWM`) of every process named one of `names`, in KiB.
pub fn processes_kib(names: &[&str], field: &str) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let name = status.lines().find_map(|l| l.strip_prefix("Name:")).map(str::trim).unwrap_or_default();
        if names.contains(&name) {
            found.push((name.to_string(), status_kib(&status, field).unwrap_or(0)));
        }
    }
    found.sort();
    found
}

/// The command line that ran this tool, for a report to quote.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// How every benchmark reports: `<out>/<name>.md` (`markdown`) and `<out>/<name>.json`
/// (`results`), and the Markdown on stdout.
pub fn write_report(out: &str, name: &str, markdown: &str, results: &impl serde::Serialize) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(format!("{out}/{name}.md"), markdown)?;
    std::fs::write(format!("{out}/{name}.json"), serde_json::to_string_pretty(results)?)?;
    println!("{markdown}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_kib_reads_one_field() {
        let status = "Name:\tapi\nVmHWM:\t   43520 kB\nVmRSS:\t   16700 kB\n";
        assert_eq!(super::status_kib(status, "VmRSS"), Some(16700));
        assert_eq!(super::status_kib(status, "VmHWM"), Some(43520));
        assert_eq!(super::status_kib(status, "VmSwap"), None);
    }
}
