//! Reading many inputs on every core, handed out in the order given.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::sync::{Condvar, Mutex, PoisonError};
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
/// as soon as it and those before it are ready. A thread that is done takes the next input not
/// yet taken, so one large file keeps one core busy while the others read the rest; but no
/// input is taken `2 * jobs` places or more ahead of the one `each` waits for, so memory holds
/// at most `2 * jobs` reports, whatever the number and sizes of the inputs. `each` returns false
/// to stop early: inputs being read are finished, no other is taken. A panic in `scan` or in
/// `each` stops the other threads and is raised again here.
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
    let window = 2 * jobs;
    let turns = Turns {
        state: Mutex::new(Turn {
            next: 0,
            given: 0,
            stop: false,
        }),
        moved: Condvar::new(),
        len: paths.len(),
        window,
    };
    let (scan, turns) = (&scan, &turns);
    thread::scope(|scope| {
        let (send, receive) = channel();
        for _ in 0..jobs {
            let send = send.clone();
            scope.spawn(move || {
                // However this thread ends, a panic above all, the others stop rather than
                // wait for a turn that will never come.
                let _stop = StopOnDrop(turns);
                while let Some(i) = turns.take() {
                    // The consumer is gone (it stopped early, or panicked): nothing more to do.
                    if send.send((i, scan(&paths[i]))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(send);
        // However the consumer leaves (done, stopped early, a panic in `each`), no thread waits
        // for a turn; `receive` goes with it, so a thread that finishes an input stops there.
        let _stop = StopOnDrop(turns);
        // Results that came before their turn, by position modulo the window: those pending
        // are all within the window of the one awaited, so no two share a place.
        let mut early: Vec<Option<Result<Report, DecodeError>>> =
            (0..window).map(|_| None).collect();
        for (i, path) in paths.iter().enumerate() {
            let result = loop {
                if let Some(result) = early[i % window].take() {
                    break result;
                }
                // Every thread ended without this input's result: one panicked, and the scope
                // raises its panic once this returns.
                let Ok((at, result)) = receive.recv() else {
                    return;
                };
                debug_assert!(early[at % window].is_none(), "two results in one place");
                early[at % window] = Some(result);
            };
            if !each(path, result) {
                return;
            }
            turns.given(i + 1);
        }
    });
}

/// Which input the threads of [`scan_in_order`] take next, and how far they may go.
struct Turns {
    state: Mutex<Turn>,
    moved: Condvar,
    /// How many inputs there are.
    len: usize,
    /// How far ahead of the result awaited an input may be taken.
    window: usize,
}

struct Turn {
    /// The first input no thread has taken.
    next: usize,
    /// How many results the consumer is done with.
    given: usize,
    stop: bool,
}

impl Turns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Turn> {
        // The lock is only held to read and write these numbers: nothing can be left half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next input to read, once it is within the window of the one the consumer waits
    /// for; `None` when there is none left or the consumer is gone.
    fn take(&self) -> Option<usize> {
        let mut turn = self.lock();
        loop {
            if turn.stop || turn.next >= self.len {
                return None;
            }
            if turn.next < turn.given + self.window {
                turn.next += 1;
                return Some(turn.next - 1);
            }
            turn = self
                .moved
                .wait(turn)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn given(&self, given: usize) {
        self.lock().given = given;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.moved.notify_all();
    }
}

/// Stops every thread's taking of inputs when dropped.
struct StopOnDrop<'a>(&'a Turns);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
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

    /// A result that names the input it came from.
    fn named(path: &Path) -> Result<Report, DecodeError> {
        Err(DecodeError::Io(io::Error::other(
            path.display().to_string(),
        )))
    }

    #[test]
    fn a_slow_input_leaves_the_others_to_the_other_threads_within_the_window() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::{Duration, Instant};
        let paths: Vec<PathBuf> = (0..12).map(|i| PathBuf::from(i.to_string())).collect();
        let started = Mutex::new(Vec::new());
        let done = AtomicUsize::new(0);
        let mut order = Vec::new();
        scan_in_order(
            &paths,
            |path| {
                let i: usize = path.to_str().unwrap().parse().unwrap();
                started.lock().unwrap().push(i);
                if i == 0 {
                    // A large first file: the other thread reads the next ones meanwhile (one
                    // thread each, in turn, would leave input 2 waiting behind this one).
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while done.load(Ordering::SeqCst) < 3 {
                        assert!(
                            Instant::now() < deadline,
                            "inputs 1 to 3 were not read beside input 0"
                        );
                        thread::sleep(Duration::from_millis(1));
                    }
                    // Time for a thread to take input 4 if the window let it.
                    thread::sleep(Duration::from_millis(100));
                    let mut seen = started.lock().unwrap().clone();
                    seen.sort();
                    assert_eq!(
                        seen,
                        [0, 1, 2, 3],
                        "two threads go at most four inputs ahead"
                    );
                }
                done.fetch_add(1, Ordering::SeqCst);
                named(path)
            },
            2,
            |path, result| {
                let Err(DecodeError::Io(e)) = result else {
                    panic!("not the test's result")
                };
                assert_eq!(
                    e.to_string(),
                    path.display().to_string(),
                    "each result with its input"
                );
                order.push(path.to_owned());
                true
            },
        );
        assert_eq!(order, paths, "handed over in input order");
        assert_eq!(
            started.into_inner().unwrap().len(),
            12,
            "each input read once"
        );
    }

    /// Runs `scan_in_order` on 20 inputs on a thread of its own: whether it panicked, and how
    /// many results `each` was given; a failure, not a hang, if it does not return.
    fn run_apart(
        jobs: usize,
        scan_panics_at: Option<&'static str>,
        each_panics_at: Option<usize>,
    ) -> (bool, usize) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::time::Duration;
        let given = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&given);
        let (done, outcome) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let paths: Vec<PathBuf> = (0..20).map(|i| PathBuf::from(i.to_string())).collect();
            let run = std::panic::catch_unwind(|| {
                scan_in_order(
                    &paths,
                    |path| {
                        assert_ne!(path.to_str(), scan_panics_at, "a bug while reading");
                        named(path)
                    },
                    jobs,
                    |_, _| {
                        let n = counted.fetch_add(1, Ordering::SeqCst);
                        assert_ne!(Some(n), each_panics_at, "a bug while reporting");
                        true
                    },
                )
            });
            let _ = done.send(run.is_err());
        });
        let panicked = outcome
            .recv_timeout(Duration::from_secs(30))
            .expect("scan_in_order returned");
        (panicked, given.load(Ordering::SeqCst))
    }

    #[test]
    fn a_panic_while_reading_an_input_is_raised_not_waited_on() {
        for jobs in [2, 3] {
            let (panicked, given) = run_apart(jobs, Some("2"), None);
            assert!(panicked, "{jobs} jobs: the panic is raised");
            assert_eq!(
                given, 2,
                "{jobs} jobs: the inputs before it are given, none after"
            );
        }
    }

    #[test]
    fn a_panic_while_reporting_an_input_is_raised_not_waited_on() {
        for jobs in [2, 3] {
            let (panicked, given) = run_apart(jobs, None, Some(1));
            assert!(panicked, "{jobs} jobs: the panic is raised");
            assert_eq!(given, 2, "{jobs} jobs: nothing is given after it");
        }
        assert_eq!(
            run_apart(2, None, None),
            (false, 20),
            "without a panic, all of them"
        );
    }
}
