//! Reading on a thread of its own: a gzip file is inflated on one core while the scanner reads,
//! on another, the text inflated before. The text is handed over in large chunks, which go
//! back to the inflating thread once read, so memory holds a few of them whatever the size
//! of the file. For lines ([`read_lines_apart`]), the chunks end at a line break, and the
//! reading thread reads a chunk's lines itself when it is told to (the scanner is behind).

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::Scope;

/// Bytes in a chunk: handing one over costs microseconds, inflating it a fraction of a
/// millisecond.
const CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the scanner, waiting for it.
const AHEAD: usize = 2;

/// What the reading thread hands over: a chunk, how much of it is filled, and what was read
/// ahead of it if anything was; or the error that stopped it (after the chunks read before it).
type Handed<T> = io::Result<(Vec<u8>, usize, Option<T>)>;

/// Reading ahead on the reading thread: `lines` reads a chunk of whole lines when `when` says
/// so, from the number of chunks waiting for the scanner and the chunk's number, and skims
/// the others.
pub struct Ahead<A> {
    pub lines: A,
    pub when: AheadWhen,
}

/// What the reading thread does with the chunks of lines it hands over.
pub trait LinesAhead: Send {
    /// What it reads of a chunk, for the scanner.
    type Read: Send;
    /// Reads a chunk of whole lines.
    fn read(&mut self, lines: &[u8]) -> Self::Read;
    /// Looks through a chunk it hands over unread (for what reading the next ones needs),
    /// whose first line started in an earlier chunk when `line_start` is false.
    fn skim(&mut self, lines: &[u8], line_start: bool);
}

/// No reading ahead, for [`read_apart`].
pub struct Unread;

impl LinesAhead for Unread {
    type Read = ();
    fn read(&mut self, _: &[u8]) {}
    fn skim(&mut self, _: &[u8], _: bool) {}
}

/// When a chunk is read ahead, from the number of chunks waiting and the chunk's number.
pub type AheadWhen = fn(usize, usize) -> bool;

/// The bytes of `reader`, read on a thread of `scope` as fast as they are taken. When the
/// [`ReadApart`] is dropped (the scanner stopped early), the thread stops once the read under
/// way returns: the scope then ends without waiting for more input.
pub fn read_apart<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    reader: R,
) -> ReadApart<()> {
    spawn::<R, Unread>(scope, reader, None)
}

/// [`read_apart`] for lines, with `ahead` read on the reading thread when its `when` says:
/// every chunk but the last ends with a line break (the line it cuts starts the next chunk),
/// unless a line is longer than a chunk; a chunk read ahead holds whole lines. The scanner
/// takes what was read with [`ReadApart::take_ahead`].
pub fn read_lines_apart<'scope, R: Read + Send + 'scope, A: LinesAhead + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    reader: R,
    ahead: Ahead<A>,
) -> ReadApart<A::Read> {
    spawn(scope, reader, Some(ahead))
}

fn spawn<'scope, R: Read + Send + 'scope, A: LinesAhead + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut reader: R,
    mut ahead: Option<Ahead<A>>,
) -> ReadApart<A::Read> {
    let (hand, handed) = sync_channel::<Handed<A::Read>>(AHEAD);
    let (give_back, given_back) = sync_channel::<Vec<u8>>(AHEAD + 2);
    let stopped = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&stopped);
    let waiting = Arc::new(AtomicUsize::new(0));
    let handing = Arc::clone(&waiting);
    scope.spawn(move || {
        // The end of a line cut by the last chunk's end, which starts the next one.
        let mut tail = Vec::new();
        // Whether the next chunk starts at the start of a line.
        let mut line_start = true;
        for number in 0.. {
            let mut chunk = given_back.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
            chunk[..tail.len()].copy_from_slice(&tail);
            let (read, error) = fill(&mut reader, &mut chunk[tail.len()..], &stop);
            let filled = tail.len() + read;
            tail.clear();
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let more = error.is_none() && filled == CHUNK;
            let end = match ahead {
                Some(_) if more => {
                    memchr::memrchr(b'\n', &chunk[..filled]).map_or(filled, |i| i + 1)
                }
                _ => filled,
            };
            tail.extend_from_slice(&chunk[end..filled]);
            let starts_line = line_start;
            let whole_lines = starts_line && end > 0 && chunk[end - 1] == b'\n';
            if end > 0 {
                line_start = chunk[end - 1] == b'\n';
            }
            let read_ahead = match &mut ahead {
                Some(Ahead { lines, when })
                    if whole_lines && when(handing.load(Ordering::Relaxed), number) =>
                {
                    Some(lines.read(&chunk[..end]))
                }
                Some(Ahead { lines, .. }) => {
                    lines.skim(&chunk[..end], starts_line);
                    None
                }
                None => None,
            };
            if end > 0 {
                handing.fetch_add(1, Ordering::Relaxed);
                if hand.send(Ok((chunk, end, read_ahead))).is_err() {
                    return;
                }
            }
            match error {
                Some(e) => {
                    let _ = hand.send(Err(e));
                    return;
                }
                // The end: dropping `hand` tells the scanner.
                None if !more => return,
                None => {}
            }
        }
    });
    ReadApart {
        handed,
        give_back,
        stopped,
        waiting,
        chunk: Vec::new(),
        at: 0,
        end: 0,
        ahead: None,
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

/// The scanner's end of [`read_apart`] and [`read_lines_apart`]: the chunks in the order they
/// were read, then the reading thread's error if it had one, then the end.
pub struct ReadApart<T> {
    handed: Receiver<Handed<T>>,
    give_back: SyncSender<Vec<u8>>,
    /// Set when the scanner is done with the input.
    stopped: Arc<AtomicBool>,
    /// Chunks handed over and not yet taken.
    waiting: Arc<AtomicUsize>,
    chunk: Vec<u8>,
    at: usize,
    end: usize,
    /// What was read ahead of the chunk under way.
    ahead: Option<T>,
}

impl<T> ReadApart<T> {
    /// What was read ahead of the chunk under way, while none of it has been consumed.
    pub fn take_ahead(&mut self) -> Option<T> {
        if self.at == 0 {
            self.ahead.take()
        } else {
            None
        }
    }
}

impl<T> BufRead for ReadApart<T> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at == self.end {
            // A closed channel is the end: the reading thread is done (a panic there is
            // raised again when its scope ends, so it is never taken for the end).
            if let Ok(next) = self.handed.recv() {
                let (chunk, end, ahead) = next?;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                self.ahead = ahead;
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

impl<T> Drop for ReadApart<T> {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl<T> Read for ReadApart<T> {
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
    fn chunks_of_lines_end_at_a_line_break_and_those_read_ahead_hold_whole_lines() {
        // Lines of many lengths, one longer than two chunks, and a last line without its break.
        let mut data = Vec::new();
        for i in 0..40_000usize {
            let len = if i == 20_000 {
                2 * CHUNK + 5
            } else {
                i * 7 % 300
            };
            data.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
            data.push(b'\n');
        }
        data.extend_from_slice(b"no break");
        for step in [1000, CHUNK, 3 * CHUNK] {
            std::thread::scope(|scope| {
                struct Copy;
                impl LinesAhead for Copy {
                    type Read = Vec<u8>;
                    fn read(&mut self, lines: &[u8]) -> Vec<u8> {
                        lines.to_vec()
                    }
                    fn skim(&mut self, _: &[u8], _: bool) {}
                }
                let ahead = Ahead {
                    lines: Copy,
                    when: |_, _| true,
                };
                let reader = Dribble {
                    data: &data,
                    step,
                    error: None,
                };
                let mut apart = read_lines_apart(scope, reader, ahead);
                let (mut read, mut chunks, mut ahead) = (Vec::new(), 0, 0);
                loop {
                    apart.fill_buf().unwrap();
                    let taken = apart.take_ahead();
                    let buf = apart.fill_buf().unwrap();
                    if buf.is_empty() {
                        break;
                    }
                    if let Some(taken) = taken {
                        assert!(taken == buf, "what was read ahead is the chunk");
                        assert!(read.is_empty() || read.ends_with(b"\n"));
                        ahead += 1;
                    }
                    chunks += 1;
                    let more = read.len() + buf.len() < data.len();
                    assert!(!more || buf.ends_with(b"\n") || !buf.contains(&b'\n'));
                    read.extend_from_slice(buf);
                    let n = buf.len();
                    apart.consume(n);
                }
                assert!(read == data, "{step} at a time");
                // The chunks within the long line, and the one after it, are not read ahead.
                assert!(ahead > 0 && ahead + 4 >= chunks, "{ahead} of {chunks}");
                assert!(ahead < chunks);
            });
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
