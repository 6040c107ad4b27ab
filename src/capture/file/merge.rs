//! Many capture files as one timeline: a k-way merge by packet time, as `mergecap` does, so the
//! order of the files on the command line does not matter; or the files one after another, in
//! the order given.
//!
//! Each file is read a chunk ahead in constant memory. A file is opened only when the merge
//! reaches the time of its first packet (looked at once, in small chunks, before the merge
//! starts), so a folder of rotated captures holds open only the files whose times overlap. A
//! file that cannot be opened or fails part way is reported and the others go on.

use super::{FileSource, Input};
use crate::capture::{
    LinkType, PacketSource, RawPacket, Read as SourceRead, SourceError, Timestamp,
};
use std::time::Duration;

/// How several inputs make one timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Packets of all inputs merged by their time, whatever the inputs' order.
    #[default]
    Time,
    /// Each input read to its end before the next, in the order given.
    Given,
}

/// The frame a source read last and has not handed out: where it lies in the source's chunk.
#[derive(Clone, Copy, Debug)]
struct Head {
    ts: Timestamp,
    orig_len: u32,
    link: LinkType,
    off: usize,
    len: usize,
}

impl Head {
    fn of(p: &RawPacket<'_>) -> Self {
        Head {
            ts: p.ts,
            orig_len: p.orig_len,
            link: p.link,
            off: p.data.as_ptr() as usize - p.chunk.as_ptr() as usize,
            len: p.data.len(),
        }
    }
}

struct Open {
    src: FileSource,
    head: Head,
    /// Frames of a link type this sensor does not decode, and the last such type.
    other_link: (u64, u32),
}

impl Open {
    fn new(src: FileSource, head: Head) -> Self {
        let mut o = Open {
            src,
            head,
            other_link: (0, 0),
        };
        o.count_link();
        o
    }

    fn count_link(&mut self) {
        if let LinkType::Other(n) = self.head.link {
            self.other_link = (self.other_link.0 + 1, n);
        }
    }
}

/// A name for the link types a capture of another kind of network most often has.
fn link_name(n: u32) -> &'static str {
    match n {
        6 => " (Token Ring)",
        9 | 50 | 51 => " (PPP)",
        10 => " (FDDI)",
        105 => " (IEEE 802.11)",
        119 | 127 | 163 => " (IEEE 802.11 with radio headers)",
        147..=162 => " (a private USER link type)",
        189 | 220 => " (USB)",
        187 | 201 => " (Bluetooth)",
        195 | 215 | 230 | 283 => " (IEEE 802.15.4)",
        _ => "",
    }
}

/// An input not opened yet: the time of its first packet, and an input that cannot be read
/// twice (standard input, a FIFO) kept open with its first frame read.
type Waiting = (Timestamp, Input, Option<(FileSource, Head)>);

/// Several capture inputs read as one source, merged by time or one after another.
pub struct Merge {
    /// Inputs not opened yet, the next one last, with the time of its first packet.
    waiting: Vec<Waiting>,
    open: Vec<Open>,
    /// The source whose head was handed out last: it reads its next frame first.
    last: Option<usize>,
    order: Order,
    /// Errors of the inputs, each naming its file (and the packet and offset, if past the open).
    pub errors: Vec<String>,
    /// Inputs opened successfully.
    pub opened: usize,
    done_bytes: u64,
    done_cpu: Duration,
    /// Frames a filter keeps (`--bpf`); the others are passed over and counted.
    filter: Option<Filter>,
    /// Frames the filter left out.
    pub filtered: u64,
}

/// Which frames to keep, by link type and bytes (`--bpf`).
pub trait FrameFilter: Send {
    /// Whether to keep a frame.
    fn keep(&mut self, link: LinkType, frame: &[u8]) -> bool;
    /// What went wrong so far (taken once the inputs end), each naming its cause.
    fn take_errors(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// A boxed [`FrameFilter`].
pub type Filter = Box<dyn FrameFilter>;

impl Merge {
    /// Prepares to read `inputs`. In time order, each input's first packet is looked at now
    /// (standard input, FIFOs and devices stay open; a file is opened again when its time
    /// comes).
    pub fn new(inputs: &[Input], order: Order) -> Self {
        let mut m = Merge {
            waiting: Vec::new(),
            open: Vec::new(),
            last: None,
            order,
            errors: Vec::new(),
            opened: 0,
            done_bytes: 0,
            done_cpu: Duration::ZERO,
            filter: None,
            filtered: 0,
        };
        match order {
            Order::Given => {
                m.waiting = inputs
                    .iter()
                    .rev()
                    .map(|i| (Timestamp(0), i.clone(), None))
                    .collect();
            }
            Order::Time => {
                for input in inputs {
                    // Standard input, a FIFO or a device cannot be read twice: it is opened for
                    // good now, and stays open with its first frame read.
                    let once = match input {
                        Input::Stdin => true,
                        Input::Path(p) => !std::fs::metadata(p).is_ok_and(|m| m.is_file()),
                    };
                    let opened = if once {
                        FileSource::open_input(input)
                    } else {
                        FileSource::peek_input(input)
                    };
                    let mut src = match opened {
                        Ok(s) => s,
                        Err(e) => {
                            m.errors.push(e.to_string());
                            continue;
                        }
                    };
                    let (first, head) = match src.next_packet() {
                        Ok(Some(p)) => (p.ts, Head::of(&p)),
                        // Empty: opened, nothing to merge.
                        Ok(None) => {
                            m.opened += 1;
                            continue;
                        }
                        Err(e) => {
                            m.opened += 1;
                            m.errors.push(e.to_string());
                            continue;
                        }
                    };
                    let held = once.then_some((src, head));
                    m.waiting.push((first, input.clone(), held));
                }
                // Latest first, so the next to open is last; among equal times the first given
                // is opened first (reversed, then a stable sort).
                m.waiting.reverse();
                m.waiting.sort_by_key(|w| std::cmp::Reverse(w.0));
            }
        }
        m
    }

    /// Opens the inputs whose time has come: every one whose first packet is not after the
    /// earliest frame waiting (time order), or the next one once all are done (given order).
    fn activate(&mut self) {
        loop {
            let due = match (self.order, self.waiting.last()) {
                (_, None) => return,
                (Order::Given, Some(_)) => self.open.is_empty(),
                (Order::Time, Some((first, ..))) => self
                    .open
                    .iter()
                    .map(|o| o.head.ts)
                    .min()
                    .is_none_or(|t| *first <= t),
            };
            if !due {
                return;
            }
            let Some((_, input, held)) = self.waiting.pop() else {
                return;
            };
            if let Some((src, head)) = held {
                self.opened += 1;
                self.open.push(Open::new(src, head));
                continue;
            }
            let mut src = match FileSource::open_input(&input) {
                Ok(s) => s,
                Err(e) => {
                    self.errors.push(e.to_string());
                    continue;
                }
            };
            self.opened += 1;
            let head = match src.next_packet() {
                Ok(Some(p)) => Some(Head::of(&p)),
                Ok(None) => None,
                Err(e) => {
                    self.errors.push(e.to_string());
                    None
                }
            };
            match head {
                Some(head) => self.open.push(Open::new(src, head)),
                None => self.retire(src, (0, 0)),
            }
        }
    }

    /// Keeps only the frames `filter` accepts.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    fn retire(&mut self, src: FileSource, (other, link): (u64, u32)) {
        // A capture of a network this sensor does not read gives nothing: say so, by its type.
        if other > 0 && other == src.packets() {
            self.errors.push(format!(
                "{}: every one of its {other} packets has link type {link}{}, which picket does not decode",
                src.path().display(),
                link_name(link)
            ));
        }
        self.done_bytes += src.position();
        self.done_cpu += src.helper_cpu();
    }

    /// Reads the next frame of source `i`, retiring it at its end or error.
    fn advance(&mut self, i: usize) {
        let Some(o) = self.open.get_mut(i) else {
            return;
        };
        let next = match o.src.next_packet() {
            Ok(Some(p)) => Ok(Some(Head::of(&p))),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        match next {
            Ok(Some(h)) => {
                o.head = h;
                o.count_link();
            }
            done => {
                if let Err(e) = done {
                    self.errors.push(e);
                }
                let o = self.open.remove(i);
                self.retire(o.src, o.other_link);
            }
        }
    }
}

impl PacketSource for Merge {
    fn read(&mut self) -> Result<SourceRead<'_>, SourceError> {
        if let Some(i) = self.last.take() {
            self.advance(i);
        }
        let i = loop {
            self.activate();
            // The earliest head; the first source among equals (given order, then opening
            // order).
            let mut best: Option<(usize, Timestamp)> = None;
            for (i, o) in self.open.iter().enumerate() {
                if best.is_none_or(|(_, t)| o.head.ts < t) {
                    best = Some((i, o.head.ts));
                }
            }
            let Some((i, _)) = best else {
                if let Some(f) = self.filter.as_mut() {
                    self.errors.append(&mut f.take_errors());
                }
                return Ok(SourceRead::End);
            };
            let Some(f) = self.filter.as_mut() else {
                break i;
            };
            let o = &self.open[i];
            let h = o.head;
            if f.keep(h.link, &o.src.buf[h.off..h.off + h.len]) {
                break i;
            }
            self.filtered += 1;
            self.advance(i);
        };
        self.last = Some(i);
        let o = &self.open[i];
        let h = o.head;
        let chunk = &o.src.buf;
        Ok(SourceRead::Packet(RawPacket {
            ts: h.ts,
            orig_len: h.orig_len,
            link: h.link,
            data: &chunk[h.off..h.off + h.len],
            chunk,
        }))
    }

    fn position(&self) -> u64 {
        self.done_bytes + self.open.iter().map(|o| o.src.position()).sum::<u64>()
    }

    fn helper_cpu(&self) -> Duration {
        self.done_cpu
            + self
                .open
                .iter()
                .map(|o| o.src.helper_cpu())
                .sum::<Duration>()
    }
}
