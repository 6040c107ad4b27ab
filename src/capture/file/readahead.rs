//! Reading a capture file a chunk ahead, on a thread of its own, so the copy out of the page
//! cache overlaps with decoding; and the chunks going round between that thread, the reader and
//! the workers. A chunk a worker still holds is never written again.

use super::{CaptureError, CaptureErrorKind, FileSource, MAX_BLOCK, MAX_POOL};
use crate::capture::Chunk;
use std::io::{self, Read};
use std::sync::Arc;

/// Room before the data of a read-ahead chunk: the unread end of the previous chunk (less than
/// one block) is copied there, so a record that straddles two reads lies in one chunk.
const HEADROOM: usize = MAX_BLOCK as usize;
/// Chunks the read-ahead thread fills before the reader takes them.
const AHEAD: usize = 2;

/// Reads a file on a thread of its own, a chunk ahead of the reader, so the copy out of the page
/// cache overlaps with decoding: the reader only walks records. Each chunk has [`HEADROOM`]
/// free bytes before its data, where the reader puts the unread end of the chunk before.
pub(super) struct ReadAhead {
    /// Filled chunks and their data lengths, in file order; an error ends the stream, and so
    /// does the end of the file (the thread leaves, which disconnects the channel).
    pub(super) full: crossbeam_channel::Receiver<io::Result<(Chunk, usize)>>,
    /// Chunks no worker holds any more, for the thread to fill again (still in their `Arc`, so
    /// a chunk's round trip allocates nothing).
    pub(super) empty: crossbeam_channel::Sender<Chunk>,
    /// The thread's CPU time in nanoseconds, written when it ends (before its channel closes).
    pub(super) cpu: Arc<std::sync::atomic::AtomicU64>,
}

/// Writes its thread's CPU time when dropped: at every way out of the read-ahead thread.
struct CpuOnExit(Arc<std::sync::atomic::AtomicU64>);

impl Drop for CpuOnExit {
    fn drop(&mut self) {
        let ns = u64::try_from(crate::capture::thread_cpu().as_nanos()).unwrap_or(u64::MAX);
        self.0.store(ns, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ReadAhead {
    pub(super) fn start(input: Box<dyn Read + Send>, chunk: usize) -> io::Result<Self> {
        let (full_tx, full) = crossbeam_channel::bounded(AHEAD);
        let (empty, empty_rx) = crossbeam_channel::unbounded::<Chunk>();
        let cpu = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let on_exit = CpuOnExit(Arc::clone(&cpu));
        std::thread::Builder::new()
            .name("picket-read".into())
            .spawn(move || {
                // Dropped at the end of this body, before the captured sender closes the channel.
                let _on_exit = on_exit;
                Self::run(input, chunk, &full_tx, &empty_rx);
            })?;
        Ok(ReadAhead { full, empty, cpu })
    }

    /// The thread's loop: fills chunks until the file ends, fails, or the reader leaves.
    fn run(
        mut input: Box<dyn Read + Send>,
        chunk: usize,
        full_tx: &crossbeam_channel::Sender<io::Result<(Chunk, usize)>>,
        empty_rx: &crossbeam_channel::Receiver<Chunk>,
    ) {
        loop {
            let mut buf = empty_rx
                .try_iter()
                .find(|c| Arc::strong_count(c) == 1)
                .unwrap_or_else(|| Arc::new(vec![0; HEADROOM + chunk]));
            let Some(bytes) = Arc::get_mut(&mut buf) else {
                continue; // not reached: only unshared chunks come back
            };
            let mut n = 0;
            let result = loop {
                let Some(room) = bytes.get_mut(HEADROOM + n..).filter(|r| !r.is_empty()) else {
                    break Ok(true);
                };
                match input.read(room) {
                    Ok(0) => break Ok(false),
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            // The reader has gone (stopped early): so does the thread.
            if n > 0 && full_tx.send(Ok((buf, n))).is_err() {
                return;
            }
            match result {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = full_tx.send(Err(e));
                    return;
                }
            }
        }
    }
}

impl FileSource {
    /// [`FileSource::fill`] from the read-ahead thread: takes its next chunk and puts the unread
    /// rest of the current one in the room before its data.
    pub(super) fn fill_ahead(&mut self, need: usize) -> Result<bool, CaptureError> {
        self.give_back();
        while self.end - self.start < need && !self.eof {
            let Some(ahead) = &self.ahead else {
                return Ok(false);
            };
            match ahead.full.recv() {
                // The thread has left: the file ended.
                Err(_) => self.eof = true,
                Ok(Err(e)) => {
                    self.eof = true;
                    return Err(self.error(CaptureErrorKind::Io(e)));
                }
                Ok(Ok((mut next, n))) => {
                    let rest = self.end - self.start;
                    let (chunk, start) = match Arc::get_mut(&mut next) {
                        Some(b) if rest <= HEADROOM => {
                            b[HEADROOM - rest..HEADROOM]
                                .copy_from_slice(&self.buf[self.start..self.end]);
                            (next, HEADROOM - rest)
                        }
                        _ => {
                            // More unread bytes than the room holds (chunks smaller than a
                            // record): join them in a new chunk.
                            let mut joined = Vec::with_capacity(rest + n);
                            joined.extend_from_slice(&self.buf[self.start..self.end]);
                            joined.extend_from_slice(&next[HEADROOM..HEADROOM + n]);
                            let _ = self.ahead.as_ref().map(|a| a.empty.send(next));
                            (Arc::new(joined), 0)
                        }
                    };
                    let old = std::mem::replace(&mut self.buf, chunk);
                    if self.pool.len() < MAX_POOL {
                        self.pool.push(old);
                    }
                    self.start = start;
                    self.end = start + rest + n;
                }
            }
        }
        Ok(self.end - self.start >= need)
    }

    /// Hands the read-ahead thread the retired chunks that no worker holds any more.
    pub(super) fn give_back(&mut self) {
        let Some(ahead) = &self.ahead else {
            return;
        };
        let mut i = 0;
        while i < self.pool.len() {
            if Arc::strong_count(&self.pool[i]) == 1 {
                let c = self.pool.swap_remove(i);
                if c.len() >= HEADROOM + self.chunk {
                    let _ = ahead.empty.send(c);
                }
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::BUF_SIZE;
    use super::*;
    use std::path::PathBuf;

    /// Frames of every size, in pcap and pcapng, read ahead on a thread and in place, at chunk
    /// sizes that put record boundaries everywhere: the same frames, and a chunk a worker still
    /// holds is never written again.
    #[test]
    fn read_ahead_gives_the_frames_reading_in_place_gives() {
        let sizes = [1usize, 60, 1514, 9000, 70_000, 200_000, 256 * 1024, 3, 4096];
        let frame =
            |i: usize, n: usize| -> Vec<u8> { (0..n).map(|j| (i * 31 + j * 7) as u8).collect() };
        let mut pcap = pcap_header(PCAP_US_LE, false, 1);
        let mut ng = Vec::new();
        shb(&mut ng, false);
        idb(&mut ng, false, 1, None);
        for (i, &n) in sizes.iter().cycle().take(40).enumerate() {
            pcap_record(&mut pcap, false, i as u32, 0, &frame(i, n));
            epb(&mut ng, false, 0, i as u64, &frame(i, n));
        }
        for bytes in [pcap, ng] {
            let len = bytes.len() as u64;
            let open = |ahead: bool, chunk: usize| {
                let input = Box::new(io::Cursor::new(bytes.clone()));
                let path = PathBuf::from("t");
                if ahead {
                    FileSource::read_ahead(path, input, Some(len), chunk)
                } else {
                    FileSource::with_chunk_size(path, input, Some(len), chunk)
                }
                .unwrap()
            };
            let want = collect(&mut open(false, BUF_SIZE));
            assert_eq!(want.len(), 40);
            for chunk in [4096, 65_536, 300_000, BUF_SIZE] {
                let mut src = open(true, chunk);
                // Every third frame is held, as a lagging worker would: the chunks of the
                // others go back to the thread and are filled again meanwhile.
                let mut held: Vec<(usize, Chunk, usize, usize)> = Vec::new();
                let mut got = Vec::new();
                while let Some(p) = src.next_packet().unwrap() {
                    let off = p.data.as_ptr() as usize - p.chunk.as_ptr() as usize;
                    if got.len() % 3 == 0 {
                        held.push((got.len(), Arc::clone(p.chunk), off, p.data.len()));
                    }
                    got.push((p.ts.0, p.link, p.data.to_vec()));
                }
                assert_eq!(got, want, "chunk {chunk}");
                assert_eq!(held.len(), 14);
                for (i, c, off, n) in &held {
                    let w = &want[*i];
                    assert_eq!(
                        &c[*off..off + n],
                        &w.2[..],
                        "chunk {chunk}: a held frame changed"
                    );
                }
            }
        }
    }

    /// The end of a truncated file, and a read that fails, read ahead: the same error, after
    /// the same packets.
    #[test]
    fn read_ahead_reports_truncation_and_read_errors_in_place() {
        struct Failing(io::Cursor<Vec<u8>>);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(io::Error::other("disk went away")),
                    n => Ok(n),
                }
            }
        }
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        for i in 0..5 {
            pcap_record(&mut f, false, i, 0, &[i as u8; 1000]);
        }
        let cut = f[..f.len() - 10].to_vec();
        let len = cut.len() as u64;
        let mut a = FileSource::read_ahead(
            PathBuf::from("t.pcap"),
            Box::new(io::Cursor::new(cut.clone())),
            Some(len),
            64,
        )
        .unwrap();
        let mut b = FileSource::with_chunk_size(
            PathBuf::from("t.pcap"),
            Box::new(io::Cursor::new(cut)),
            Some(len),
            64,
        )
        .unwrap();
        for _ in 0..4 {
            assert!(a.next_packet().unwrap().is_some());
            assert!(b.next_packet().unwrap().is_some());
        }
        let (ea, eb) = (a.next_packet().unwrap_err(), b.next_packet().unwrap_err());
        assert_eq!(ea.to_string(), eb.to_string());
        assert!(ea.to_string().contains("truncated"), "{ea}");
        let mut c = FileSource::read_ahead(
            PathBuf::from("t.pcap"),
            Box::new(Failing(io::Cursor::new(f))),
            None,
            64,
        )
        .unwrap();
        let mut n = 0;
        let e = loop {
            match c.next_packet() {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("a failing read is no end of file"),
                Err(e) => break e,
            }
        };
        assert_eq!(n, 5, "every packet before the failure");
        assert!(e.to_string().contains("disk went away"), "{e}");
    }
}
