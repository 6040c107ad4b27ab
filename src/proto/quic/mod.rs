//! QUIC client Initial packets: parsing, header-protection removal and decryption
//! (RFC 9000 §17.2, RFC 9001 §5, RFC 9369), so that the TLS ClientHello carried in
//! CRYPTO frames can be read by a passive sensor.
//!
//! This module only ever derives the *public* Initial keys that any observer can
//! compute from the client's Destination Connection ID. It never decrypts
//! Handshake, 0-RTT or 1-RTT packets, never reconstructs full packet numbers from
//! connection state, never keeps state between calls, never allocates beyond the
//! caller's scratch buffer while opening packets, and never panics on any input.
//!
//! One concern per file (Suricata's split): `version` (numbers, salts, labels), `header` (the
//! long header), `crypto` (Initial keys, header protection, AEAD), `frames` (the frames of an
//! Initial) and `reader` (the cursor and varints they share); this file puts them together into
//! [`client_initials`]. Sealing lives in the generator (`picket_synth::quic`), for the tests.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod crypto;
mod frames;
pub mod gquic;
mod header;
mod reader;
mod version;

pub use header::{is_short_header, long_header_ids, looks_like_client_initial, ConnId};
pub use version::{initial_salt, Labels, QUIC_V1, QUIC_V2};

use crypto::{client_keys, keys_from, open, Keys};
use frames::{crypto_frame_type, walk_frames};
use header::{parse_long_header, Kind, LongHeader};
use version::{LABELS_V1, TRIAL_SALTS};

/// Why a datagram could not be read as a client Initial.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum QuicError {
    /// The first packet is not a long-header Initial packet (short header, Version Negotiation, other type).
    NotInitial,
    /// The long header carries a version whose Initial protection is not known.
    UnknownVersion(u32),
    /// The datagram ends before the header, or before the bytes its Length field announces.
    Truncated,
    /// The Length field is too small to hold a packet number, the header-protection sample and the tag.
    BadLength,
    /// AEAD authentication failed (wrong keys, a server's Initial, or corrupted bytes).
    Decrypt,
    /// The packet is structurally invalid; the text says what was wrong.
    Malformed(&'static str),
}

impl core::fmt::Display for QuicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotInitial => f.write_str("not a QUIC Initial packet"),
            Self::UnknownVersion(v) => write!(f, "unknown QUIC version {v:#010x}"),
            Self::Truncated => f.write_str("truncated QUIC packet"),
            Self::BadLength => f.write_str("implausible QUIC Length field"),
            Self::Decrypt => f.write_str("QUIC Initial decryption failed"),
            Self::Malformed(what) => write!(f, "malformed QUIC packet: {what}"),
        }
    }
}

impl std::error::Error for QuicError {}

/// What `client_initials` learned from the datagram's first Initial packet.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct InitialInfo {
    /// QUIC version of the long header.
    pub version: u32,
    /// Destination connection ID of the first Initial in the datagram.
    pub dcid: ConnId,
    /// Source connection ID of the first Initial in the datagram.
    pub scid: ConnId,
    /// Number of Initial packets decrypted from the datagram.
    pub packets: u32,
}

/// Opens one Initial packet and, if its frames are well formed, hands its CRYPTO frames to `on_crypto`.
fn open_and_deliver(
    packet: &[u8],
    h: &LongHeader,
    keys: &Keys,
    scratch: &mut Vec<u8>,
    on_crypto: &mut impl FnMut(u64, &[u8]),
) -> Result<(), QuicError> {
    let header_len = open(packet, h, keys, scratch)?;
    let payload = scratch.get(header_len..).unwrap_or(&[]);
    // Validate first so that a malformed packet delivers nothing.
    let crypto = crypto_frame_type(h.version);
    walk_frames(payload, crypto, &mut |_, _| {})?;
    walk_frames(payload, crypto, on_crypto)
}

/// Decrypts every client Initial packet coalesced in one UDP datagram and hands each CRYPTO frame's (offset, data) to `on_crypto`.
///
/// Keys come from `original_dcid` when given (the DCID of the client's first
/// Initial of the connection — later Initials, e.g. after a server's first
/// reply, carry another DCID but keep these keys), else from this packet's DCID.
/// Non-Initial packets coalesced after an Initial (0-RTT, Handshake) are skipped.
/// `scratch` is a caller-owned buffer reused for the decrypted payload (no
/// allocation in steady state). Errors describe the datagram's first packet;
/// a later coalesced packet that fails to parse or decrypt ends the walk and
/// the Initials opened so far are reported. Packet numbers are taken as sent
/// (truncated), which is exact for a client's first 2^(8·pn_len) packets.
/// `on_crypto` is only called for packets that authenticated and whose frames
/// all parsed.
pub fn client_initials(
    datagram: &[u8],
    original_dcid: Option<&ConnId>,
    scratch: &mut Vec<u8>,
    mut on_crypto: impl FnMut(u64, &[u8]),
) -> Result<InitialInfo, QuicError> {
    let h = parse_long_header(datagram, true)?;
    let key_dcid = original_dcid.unwrap_or(&h.dcid);
    let packet = datagram.get(..h.end).ok_or(QuicError::Truncated)?;
    let keys = match initial_salt(h.version) {
        Some(_) => {
            let keys = client_keys(h.version, key_dcid.as_slice())?;
            open_and_deliver(packet, &h, &keys, scratch, &mut on_crypto)?;
            keys
        }
        None => {
            // An unknown version: try the known salts; only the right one authenticates.
            let mut found = None;
            for salt in TRIAL_SALTS {
                let keys = keys_from(salt, LABELS_V1, key_dcid.as_slice())?;
                if open_and_deliver(packet, &h, &keys, scratch, &mut on_crypto).is_ok() {
                    found = Some(keys);
                    break;
                }
            }
            found.ok_or(QuicError::UnknownVersion(h.version))?
        }
    };
    let mut info = InitialInfo {
        version: h.version,
        dcid: h.dcid,
        scid: h.scid,
        packets: 1,
    };

    let mut rest = datagram.get(h.end..).unwrap_or(&[]);
    while !rest.is_empty() {
        let Ok(next) = parse_long_header(rest, false) else {
            // Short header (1-RTT runs to the end), padding, or garbage.
            break;
        };
        if next.version != h.version {
            break;
        }
        match next.kind {
            Kind::Retry => break,
            Kind::ZeroRtt | Kind::Handshake => {}
            Kind::Initial => {
                let Some(packet) = rest.get(..next.end) else {
                    break;
                };
                if open_and_deliver(packet, &next, &keys, scratch, &mut on_crypto).is_err() {
                    break;
                }
                info.packets += 1;
            }
        }
        rest = rest.get(next.end..).unwrap_or(&[]);
    }
    Ok(info)
}

#[cfg(test)]
mod tests;
