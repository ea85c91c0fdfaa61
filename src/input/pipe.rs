//! Reading on a thread of its own: a gzip file is inflated on one core while the scanner reads,
//! on another, the text inflated before. The text is handed over in large chunks, which go
//! back to the inflating thread once read, so memory holds a few of them whatever the size
//! of the file.

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::Scope;

/// Bytes in a chunk: handing one over costs microseconds, inflating it a fraction of a
/// millisecond.
const CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the scanner, waiting for it.
const AHEAD: usize = 2;

/// What the reading thread hands over: a chunk and how much of it is filled, or the error
/// that stopped it (after the chunks read before it).
type Handed = io::Result<(Vec<u8>, usize)>;

/// The bytes of `reader`, read on a thread of `scope` as fast as they are taken. When the
/// [`ReadApart`] is dropped (the scanner stopped early), the thread stops once the read under
/// way returns: the scope then ends without waiting for more input.
pub fn read_apart<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut reader: R,
) -> ReadApart {
    let (hand, handed) = sync_channel::<Handed>(AHEAD);
    let (give_back, given_back) = sync_channel::<Vec<u8>>(AHEAD + 2);
    let stopped = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&stopped);
    scope.spawn(move || loop {
        let mut chunk = given_back.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        let (filled, error) = fill(&mut reader, &mut chunk, &stop);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if filled > 0 && hand.send(Ok((chunk, filled))).is_err() {
            return;
        }
        match error {
            Some(e) => {
                let _ = hand.send(Err(e));
                return;
            }
            // The end: dropping `hand` tells the scanner.
            None if filled < CHUNK => return,
            None => {}
        }
    });
    ReadApart {
        handed,
        give_back,
        stopped,
        chunk: Vec::new(),
        at: 0,
        end: 0,
    }
}

/// Reads into `chunk` until it is full, the input ends or `stop` is set; how much was read,
/// and the error that stopped the reading, if one did.
fn fill(reader: &mut impl Read, chunk: &mut [u8], stop: &AtomicBool) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < chunk.len() && !stop.load(Ordering::Relaxed) {
        match reader.read(&mut chunk[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

/// The scanner's end of [`read_apart`]: the chunks in the order they were read, then the
/// reading thread's error if it had one, then the end.
pub struct ReadApart {
    handed: Receiver<Handed>,
    give_back: SyncSender<Vec<u8>>,
    /// Set when the scanner is done with the input.
    stopped: Arc<AtomicBool>,
    chunk: Vec<u8>,
    at: usize,
    end: usize,
}

impl BufRead for ReadApart {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at == self.end {
            // A closed channel is the end: the reading thread is done (a panic there is
            // raised again when its scope ends, so it is never taken for the end).
            if let Ok(next) = self.handed.recv() {
                let (chunk, end) = next?;
                let read = std::mem::replace(&mut self.chunk, chunk);
                if !read.is_empty() {
                    // When the thread has stopped or has enough, the chunk is simply freed.
                    let _ = self.give_back.try_send(read);
                }
                self.at = 0;
                self.end = end;
            }
        }
        Ok(&self.chunk[self.at..self.end])
    }

    fn consume(&mut self, amount: usize) {
        self.at = (self.at + amount).min(self.end);
    }
}

impl Drop for ReadApart {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl Read for ReadApart {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data` a few bytes at a time, then fails with `error` if there is one.
    struct Dribble<'a> {
        data: &'a [u8],
        step: usize,
        error: Option<io::ErrorKind>,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return match self.error.take() {
                    Some(kind) => Err(io::Error::new(kind, "the pipe broke")),
                    None => Ok(0),
                };
            }
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn everything_read_apart_arrives_in_order_then_the_error() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17] {
            let data = data(len);
            for step in [1000, CHUNK, 3 * CHUNK] {
                std::thread::scope(|scope| {
                    let mut apart = read_apart(
                        scope,
                        Dribble {
                            data: &data,
                            step,
                            error: None,
                        },
                    );
                    let mut read = Vec::new();
                    apart.read_to_end(&mut read).unwrap();
                    assert!(read == data, "{len} bytes, {step} at a time");
                });
                std::thread::scope(|scope| {
                    let mut apart = read_apart(
                        scope,
                        Dribble {
                            data: &data,
                            step,
                            error: Some(io::ErrorKind::UnexpectedEof),
                        },
                    );
                    let mut read = Vec::new();
                    let mut buf = [0u8; 4096];
                    let err = loop {
                        match apart.read(&mut buf) {
                            Ok(0) => panic!("{len} bytes: the end came before the error"),
                            Ok(n) => read.extend_from_slice(&buf[..n]),
                            Err(e) => break e,
                        }
                    };
                    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
                    assert!(read == data, "{len} bytes before the error");
                });
            }
        }
    }

    #[test]
    fn a_reader_that_stops_early_stops_the_reading_thread() {
        // Endless input: the scope only ends if dropping the reader stops the thread.
        struct Endless;
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(b'x');
                Ok(buf.len())
            }
        }
        std::thread::scope(|scope| {
            let mut apart = read_apart(scope, Endless);
            let mut first = vec![0; 3 * CHUNK];
            apart.read_exact(&mut first).unwrap();
            assert!(first.iter().all(|&b| b == b'x'));
        });
        // A slow pipe, a byte at a time: the thread stops at its next read, not once a whole
        // chunk has come (a writer that has stopped writing never fills one).
        struct Slow(std::sync::mpsc::Receiver<()>);
        impl Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_millis(1));
                if self.0.try_recv().is_ok() {
                    panic!("still reading a second after the scanner stopped");
                }
                buf[0] = b'y';
                Ok(1)
            }
        }
        let (late, too_late) = std::sync::mpsc::channel();
        let alarm = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let _ = late.send(());
        });
        std::thread::scope(|scope| {
            let apart = read_apart(scope, Slow(too_late));
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(apart);
        });
        alarm.join().unwrap();
    }
}
