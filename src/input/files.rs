//! Reading many inputs on every core, handed out in the order given.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::thread;

use crate::config::Config;
use crate::input::decode::{scan_reader, DecodeError};
use crate::input::scan::Report;

/// Scans one file, or standard input for `-`.
pub fn scan_path(path: &Path, config: &Config) -> Result<Report, DecodeError> {
    if path.as_os_str() == "-" {
        return scan_reader(io::stdin(), config);
    }
    let file = File::open(path)
        .map_err(|e| DecodeError::Io(io::Error::new(e.kind(), format!("cannot open: {e}"))))?;
    scan_reader(file, config)
}

/// Scans `paths` with `scan` on `jobs` threads and gives each result to `each` in the order of `paths`,
/// as soon as it and those before it are ready. Worker `w` takes the inputs `w`, `w + jobs`,
/// ... and is at most one result ahead of the consumer, so memory holds at most `2 * jobs`
/// reports, whatever the number of inputs. `each` returns false to stop early.
pub fn scan_in_order(
    paths: &[PathBuf],
    scan: impl Fn(&Path) -> Result<Report, DecodeError> + Sync,
    jobs: usize,
    mut each: impl FnMut(&Path, Result<Report, DecodeError>) -> bool,
) {
    let jobs = jobs.clamp(1, paths.len().max(1));
    if jobs == 1 {
        for path in paths {
            if !each(path, scan(path)) {
                return;
            }
        }
        return;
    }
    let scan = &scan;
    thread::scope(|scope| {
        let receivers: Vec<_> = (0..jobs)
            .map(|w| {
                let (send, receive) = sync_channel(1);
                scope.spawn(move || {
                    for path in paths.iter().skip(w).step_by(jobs) {
                        // The consumer hung up (it stopped early): nothing more to do.
                        if send.send(scan(path)).is_err() {
                            return;
                        }
                    }
                });
                receive
            })
            .collect();
        for (i, path) in paths.iter().enumerate() {
            let Ok(result) = receivers[i % jobs].recv() else {
                return;
            };
            if !each(path, result) {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_input_order_whatever_the_number_of_jobs() {
        let dir = std::env::temp_dir().join(format!("vfa-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config::with_vpc_cidrs("10.0.0.0/16").unwrap();
        let paths: Vec<PathBuf> = (0..7)
            .map(|i| {
                let path = dir.join(format!("{i}.log"));
                let records: String = (0..i)
                    .map(|n| format!("2 1 eni-1 10.0.0.{n} 10.0.1.1 1 22 6 1 40 1 2 REJECT OK\n"))
                    .collect();
                std::fs::write(&path, records).unwrap();
                path
            })
            .chain([dir.join("missing.log")])
            .collect();
        for jobs in [1, 2, 3, 16] {
            let mut seen = Vec::new();
            scan_in_order(
                &paths,
                |p| scan_path(p, &config),
                jobs,
                |path, result| {
                    seen.push((path.to_owned(), result.map(|r| r.counts.findings).ok()));
                    true
                },
            );
            let expected: Vec<_> = paths
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), (i < 7).then_some(i as u64)))
                .collect();
            assert_eq!(seen, expected, "{jobs} jobs");
        }
        let mut taken = 0;
        scan_in_order(
            &paths,
            |p| scan_path(p, &config),
            2,
            |_, _| {
                taken += 1;
                taken < 3
            },
        );
        assert_eq!(taken, 3, "stopping early stops");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
