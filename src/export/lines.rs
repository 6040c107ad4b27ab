//! JSON-lines output files that only ever hold whole lines. Lines are gathered in memory and
//! written with one `write_all` per flush; a write that fails part way is cut back off the file
//! (`set_len` to the length before it), so the file always ends on a whole line, and the counters
//! say exactly which lines reached the file and which were dropped. Never parses or shapes lines.
//!
//! An existing file is either appended to (a partial last line left by a crash or a full disk
//! is cut off first, so appending starts on a clean line) or replaced: the lines go to a
//! temporary file beside it (mode 0640), which is renamed over the path at the first flush, so
//! the path always names a whole file, the old one until the new one has its first lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files not yet renamed over their paths, so an exit that cannot unwind (a third stop
/// signal) can remove them: see [`remove_temporary_files`].
static TEMPORARY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn track(p: &Path) {
    if let Ok(mut t) = TEMPORARY.lock() {
        t.push(p.to_path_buf());
    }
}

fn untrack(p: &Path) {
    if let Ok(mut t) = TEMPORARY.lock() {
        t.retain(|x| x != p);
    }
}

/// Removes every temporary file not yet renamed over its path (the old files stay as they
/// were). For an exit that skips destructors.
pub fn remove_temporary_files() {
    if let Ok(mut t) = TEMPORARY.lock() {
        for p in t.drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A file that replaces `path` atomically: written beside it (mode 0640), renamed over it by
/// [`Replacement::commit`]; dropped uncommitted, it is removed and the old file stays.
pub struct Replacement {
    path: PathBuf,
    temp: Option<PathBuf>,
    file: File,
}

impl Replacement {
    /// Creates the temporary file beside `path`; a path that is no regular file (a device such
    /// as /dev/null, a FIFO) is written in place.
    pub fn create(path: &Path) -> io::Result<Replacement> {
        if special(path) {
            return Ok(Replacement {
                path: path.to_path_buf(),
                temp: None,
                file: OpenOptions::new().write(true).open(path)?,
            });
        }
        let path = &replaced(path);
        let temp = temp_beside(path);
        let file = create_temp(&temp)?;
        Ok(Replacement {
            path: path.to_path_buf(),
            temp: Some(temp),
            file,
        })
    }

    /// The temporary file, to write.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Renames the file over its path.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(t) = self.temp.take() {
            let r = std::fs::rename(&t, &self.path);
            if r.is_err() {
                self.temp = Some(t);
            } else {
                untrack(&t);
            }
            r?;
        }
        Ok(())
    }
}

impl Drop for Replacement {
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = std::fs::remove_file(&t);
            untrack(&t);
        }
    }
}

/// Whether `path` names something that is not a regular file: a device (/dev/null, /dev/full),
/// a FIFO or a socket. Such a path is written in place: never replaced by a rename (which would
/// put a plain file where the device was) and never cut back.
fn special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file())
}

/// The file a replacement goes over: a symbolic link's target (so the link stays a link, and a
/// link to a device is not replaced by a file), else `path` itself.
fn replaced(path: &Path) -> PathBuf {
    let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    link.then(|| std::fs::canonicalize(path).ok())
        .flatten()
        .unwrap_or_else(|| path.to_path_buf())
}

/// Creates a new temporary file (mode 0640 exactly, whatever the umask), for appending.
fn create_temp(temp: &Path) -> io::Result<File> {
    // A temporary file left by an earlier run of the same pid is ours to replace.
    let _ = std::fs::remove_file(temp);
    let f = open_append(temp, true)?;
    track(temp);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    }
    Ok(f)
}

/// Lines gathered past this many bytes are written at once.
pub const FLUSH_AT: usize = 1 << 16;

/// How far back from its end a file opened for appending is searched for its last line break.
const TAIL_SEARCH: u64 = 1 << 20;

/// What opening an existing output file does to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Replace it atomically: write a temporary file beside it, renamed over it at the first
    /// flush.
    #[default]
    Replace,
    /// Append to it, after cutting off a partial last line.
    Append,
}

/// A JSON-lines output: standard output or a file, written in whole lines.
pub struct LineFile {
    target: Target,
    buf: Vec<u8>,
    /// Whole lines in `buf`.
    lines: u64,
    written: u64,
    dropped: u64,
    /// Lines dropped since writing last worked (0: it works).
    failing: u64,
    last_error: Option<io::Error>,
}

enum Target {
    Stdout(io::Stdout),
    File(FileTarget),
}

struct FileTarget {
    path: PathBuf,
    file: File,
    /// With [`Existing::Replace`], the temporary file not yet renamed over `path`.
    temp: Option<PathBuf>,
    /// A length the file still has to be cut back to (a cut that failed).
    cut: Option<u64>,
    /// A regular file, which a failed write is cut back off (not a device or a FIFO).
    regular: bool,
    /// Test hook: the next write puts this many bytes in the file, then fails as a full disk.
    #[cfg(test)]
    fail_after: Option<usize>,
}

/// Creates `path` (mode 0640), or opens it, for appending; readable too, for the tail search.
fn open_append(path: &Path, create_new: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).append(true);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o640);
    }
    o.open(path)
}

/// Cuts a partial last line off `file` (one without its line break): appending then starts on a
/// clean line. Returns the bytes cut.
fn cut_partial_tail(file: &File, path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(0);
    }
    let from = len.saturating_sub(TAIL_SEARCH);
    let mut tail = vec![0u8; usize::try_from(len - from).unwrap_or(0)];
    file.read_exact_at(&mut tail, from)?;
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} ends in a partial line with no line break in its last {} bytes: not a \
                     JSON-lines file?",
                    path.display(),
                    TAIL_SEARCH
                ),
            ))
        }
    };
    file.set_len(keep)?;
    Ok(len - keep)
}

/// The temporary file beside `path` that replaces it.
fn temp_beside(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.picket-{}-{n}.tmp", std::process::id()))
}

impl FileTarget {
    fn open(path: &Path, existing: Existing) -> io::Result<FileTarget> {
        let regular = !special(path);
        let (file, temp) = match existing {
            _ if !regular => (OpenOptions::new().write(true).open(path)?, None),
            Existing::Append => {
                let f = open_append(path, false)?;
                let cut = cut_partial_tail(&f, path)?;
                if cut > 0 {
                    tracing::warn!(path = %path.display(), bytes = cut, "cut a partial last line off before appending");
                }
                (f, None)
            }
            Existing::Replace => {
                let temp = temp_beside(&replaced(path));
                (create_temp(&temp)?, Some(temp))
            }
        };
        let path = &match existing {
            Existing::Replace if regular => replaced(path),
            _ => path.to_path_buf(),
        };
        Ok(FileTarget {
            path: path.to_path_buf(),
            file,
            temp,
            cut: None,
            regular,
            #[cfg(test)]
            fail_after: None,
        })
    }

    /// Renames the temporary file over the path, if it is not done yet.
    fn commit(&mut self) -> io::Result<()> {
        if let Some(t) = &self.temp {
            std::fs::rename(t, &self.path)?;
            untrack(t);
            self.temp = None;
        }
        Ok(())
    }

    /// Writes `data` (whole lines) with one call, or nothing: a write that fails part way is cut
    /// back off the file.
    fn write_whole(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(len) = self.cut {
            self.file.set_len(len)?;
            self.cut = None;
        }
        self.commit()?;
        if !self.regular {
            return self.write_all(data);
        }
        // The length before, not a count of our own: a `copytruncate` rotation may have cut the
        // file since the last write.
        let before = self.file.metadata()?.len();
        let r = self.write_all(data);
        if r.is_err() && self.file.set_len(before).is_err() {
            self.cut = Some(before);
        }
        r
    }

    #[cfg(not(test))]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    #[cfg(test)]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self.fail_after.take() {
            Some(n) => {
                self.file.write_all(&data[..n.min(data.len())])?;
                Err(io::Error::from_raw_os_error(28))
            }
            None => self.file.write_all(data),
        }
    }
}

impl Drop for FileTarget {
    /// A replacement never committed (nothing was ever flushed) leaves the old file alone.
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = std::fs::remove_file(&t);
            untrack(&t);
        }
    }
}

impl LineFile {
    /// Opens `path` (`-`: standard output) as `existing` says.
    pub fn open(path: &Path, existing: Existing) -> io::Result<LineFile> {
        let target = if path.as_os_str() == "-" {
            Target::Stdout(io::stdout())
        } else {
            Target::File(FileTarget::open(path, existing)?)
        };
        Ok(LineFile {
            target,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            lines: 0,
            written: 0,
            dropped: 0,
            failing: 0,
            last_error: None,
        })
    }

    /// The path written to (`-` for standard output).
    pub fn path(&self) -> &Path {
        match &self.target {
            Target::Stdout(_) => Path::new("-"),
            Target::File(f) => &f.path,
        }
    }

    /// The open file (the temporary one until it is renamed), for handing it to another owner;
    /// None for standard output.
    pub fn file(&self) -> Option<&File> {
        match &self.target {
            Target::Stdout(_) => None,
            Target::File(f) => Some(&f.file),
        }
    }

    /// Renames a replacement over its path now, before any line is flushed (`picket live` does
    /// it while it may still write the folder).
    pub fn commit(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Stdout(_) => Ok(()),
            Target::File(f) => f.commit(),
        }
    }

    /// After a rotation: writes what is gathered, then opens the path again for appending
    /// (creating it with mode 0640); on failure the old file stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.flush_lines();
        if let Target::File(f) = &mut self.target {
            f.commit()?;
            let new = FileTarget::open(&f.path, Existing::Append)?;
            *f = new;
        }
        Ok(())
    }

    /// Writes the whole lines gathered; they reach the file, or none of them does and they are
    /// counted as dropped.
    pub fn flush_lines(&mut self) {
        let Some(end) = self.buf.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let data = &self.buf[..=end];
        let r = match &mut self.target {
            Target::Stdout(s) => s.write_all(data).and_then(|()| s.flush()),
            Target::File(f) => f.write_whole(data),
        };
        let lines = std::mem::take(&mut self.lines);
        match r {
            Ok(()) => {
                self.written += lines;
                if self.failing > 0 {
                    tracing::info!(path = %self.path().display(), dropped = self.failing, "writing again, after dropping lines");
                    self.failing = 0;
                }
            }
            Err(e) => {
                self.dropped += lines;
                if self.failing == 0 {
                    tracing::error!(path = %self.path().display(), error = %e, "writing failed; lines are dropped and counted until it can be written again (nothing partial is left in the file)");
                }
                self.failing += lines.max(1);
                self.last_error = Some(e);
            }
        }
        self.buf.drain(..=end);
    }

    /// Lines that reached the file so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Lines dropped so far because writing failed.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The last write error, if a write ever failed.
    pub fn last_error(&self) -> Option<&io::Error> {
        self.last_error.as_ref()
    }

    #[cfg(test)]
    fn fail_next_write_after(&mut self, bytes: usize) {
        if let Target::File(f) = &mut self.target {
            f.fail_after = Some(bytes);
        }
    }
}

impl Write for LineFile {
    /// Gathers bytes; each line must come whole in one call (as [`EventWriter`] writes them).
    /// Never fails: failures of the file are counted when lines are flushed.
    ///
    /// [`EventWriter`]: crate::export::events::EventWriter
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if b.last() == Some(&b'\n') {
            self.lines += 1;
            if self.buf.len() >= FLUSH_AT {
                self.flush_lines();
            }
        }
        Ok(b.len())
    }

    /// Writes the whole lines gathered; an error when lines were ever dropped.
    fn flush(&mut self) -> io::Result<()> {
        self.flush_lines();
        match (&self.last_error, self.dropped) {
            (_, 0) => Ok(()),
            (Some(e), n) => Err(io::Error::new(
                e.kind(),
                format!("{n} lines dropped, last error: {e}"),
            )),
            (None, n) => Err(io::Error::other(format!("{n} lines dropped"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> Vec<u8> {
        format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 50)).into_bytes()
    }

    fn lines_of(p: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "partial line: {text:?}"
        );
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn devices_and_fifos_are_written_in_place_never_replaced() {
        use std::os::unix::fs::FileTypeExt;
        for dev in ["/dev/null", "/dev/full"] {
            let p = Path::new(dev);
            if !p.exists() {
                continue;
            }
            for existing in [Existing::Replace, Existing::Append] {
                let mut f = LineFile::open(p, existing).unwrap();
                f.write_all(&line(1)).unwrap();
                f.flush_lines();
                let _ = f.flush();
                let (ok, failed) = (f.written(), f.dropped());
                assert_eq!(ok + failed, 1, "{dev}");
                assert_eq!(
                    dev == "/dev/full",
                    failed == 1,
                    "{dev}: a full device drops the line"
                );
                let r = Replacement::create(p).unwrap();
                r.commit().unwrap();
                assert!(
                    std::fs::metadata(p).unwrap().file_type().is_char_device(),
                    "{dev} is still a device"
                );
            }
        }
        // A link to a file: the file is replaced, the link stays.
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.jsonl");
        std::fs::write(&real, b"{\"old\":1}\n").unwrap();
        let link = dir.path().join("events.jsonl");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut f = LineFile::open(&link, Existing::Replace).unwrap();
        f.write_all(&line(3)).unwrap();
        f.flush_lines();
        f.flush().unwrap();
        drop(f);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::read(&real).unwrap().starts_with(b"{\"n\":3,"));
        // A FIFO with a reader: written in place, still a FIFO.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("events.fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut f = LineFile::open(&fifo, Existing::Replace).unwrap();
        f.write_all(&line(7)).unwrap();
        f.flush_lines();
        drop(f);
        assert!(reader.join().unwrap().starts_with(b"{\"n\":7,"));
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn flush_lines_failure_part_way_leaves_only_whole_lines_and_counts_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ev.jsonl");
        let mut f = LineFile::open(&p, Existing::Replace).unwrap();
        for i in 0..10 {
            f.write_all(&line(i)).unwrap();
        }
        f.flush_lines();
        assert_eq!((f.written(), f.dropped()), (10, 0));
        // A full disk part way into the next batch: the part that went in is cut back off.
        for i in 10..20 {
            f.write_all(&line(i)).unwrap();
        }
        f.fail_next_write_after(37);
        f.flush_lines();
        assert_eq!((f.written(), f.dropped()), (10, 10));
        assert_eq!(lines_of(&p).len(), 10);
        assert!(f.flush().is_err(), "a run that dropped lines says so");
        // Space comes back: writing resumes on a clean line.
        for i in 20..25 {
            f.write_all(&line(i)).unwrap();
        }
        f.flush_lines();
        assert_eq!((f.written(), f.dropped()), (15, 10));
        let got = lines_of(&p);
        assert_eq!(got.len(), 15);
        for l in &got {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
        assert!(got[10].starts_with("{\"n\":20,"), "{}", got[10]);
    }

    #[test]
    fn open_append_cuts_a_partial_last_line_and_replace_renames_at_first_flush() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ev.jsonl");
        std::fs::write(&p, b"{\"a\":1}\n{\"a\":2}\n{\"a\"").unwrap();
        let mut f = LineFile::open(&p, Existing::Append).unwrap();
        f.write_all(b"{\"b\":1}\n").unwrap();
        f.flush().unwrap();
        assert_eq!(lines_of(&p), ["{\"a\":1}", "{\"a\":2}", "{\"b\":1}"]);
        drop(f);

        let mut f = LineFile::open(&p, Existing::Replace).unwrap();
        f.write_all(b"{\"c\":1}\n").unwrap();
        assert_eq!(
            lines_of(&p).len(),
            3,
            "the old file stays until the first flush"
        );
        f.flush().unwrap();
        assert_eq!(lines_of(&p), ["{\"c\":1}"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        drop(f);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );

        // A replacement that never wrote leaves the old file and no temporary one.
        let f = LineFile::open(&p, Existing::Replace).unwrap();
        drop(f);
        assert_eq!(lines_of(&p), ["{\"c\":1}"]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn open_append_refuses_a_file_that_is_not_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pcap");
        std::fs::write(&p, vec![0xd4u8; (TAIL_SEARCH + 10) as usize]).unwrap();
        let e = LineFile::open(&p, Existing::Append).err().unwrap();
        assert!(e.to_string().contains("not a JSON-lines file"), "{e}");
    }
}
