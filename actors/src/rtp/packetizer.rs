//! Turns 20 ms frames of 8 kHz linear PCM into G.711 RTP packets (RFC 3550 §5.1, RFC 3551 §4.5.14):
//! 160 samples per packet, the sequence number +1 and the timestamp +160 per packet (both wrapping),
//! the marker bit on the first packet of a talkspurt, the payload type of the negotiated codec and a
//! fixed SSRC. Sans-IO: the caller sends the returned bytes and owns the 20 ms clock.
//!
//! Headers are written with `rtp_rs::RtpPacketBuilder` into a fixed-size array, so producing a packet
//! allocates nothing.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use rtp_rs::{RtpPacketBuilder, Seq};

use super::g711::{Codec, SAMPLE_RATE_HZ};

/// Samples in one packet: 20 ms at 8 kHz. Also the timestamp increment per packet, since the RTP
/// clock of PCMU/PCMA is the sampling clock (RFC 3551 §4.5.14).
pub const SAMPLES_PER_PACKET: usize = (SAMPLE_RATE_HZ as usize) * 20 / 1000;

/// Time between two packets: the `ptime` of 20 ms, the RFC 3551 §4.5 default for G.711.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);

/// Length of the fixed RTP header without CSRCs or extensions (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// Length of every packet this module produces: header plus one byte per G.711 sample.
pub const PACKET_LEN: usize = RTP_HEADER_LEN + SAMPLES_PER_PACKET;

/// One complete RTP packet, ready for `send_to`.
pub type RtpPacket = [u8; PACKET_LEN];

/// Why a frame could not be turned into a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// The frame holds more samples than one 20 ms packet carries.
    #[error("a frame of {0} samples exceeds the {SAMPLES_PER_PACKET} of one packet")]
    FrameTooLong(usize),
    /// `rtp_rs` refused the header (cannot happen with PCMU/PCMA and a packet-sized buffer).
    #[error("RTP packet could not be built: {0}")]
    Build(String),
}

/// The operating system's random generator failed while choosing SSRC, sequence and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no randomness available for the RTP stream")]
pub struct NoRandomness;

/// The sending state of one RTP stream (one per call).
#[derive(Debug, Clone)]
pub struct Packetizer {
    codec: Codec,
    ssrc: u32,
    next_seq: u16,
    next_timestamp: u32,
    marker_pending: bool,
    packets_sent: u64,
}

impl Packetizer {
    /// A stream starting at `first_seq` / `first_ts`; its first packet carries the marker bit.
    pub fn new(codec: Codec, ssrc: u32, first_seq: u16, first_ts: u32) -> Self {
        Self {
            codec,
            ssrc,
            next_seq: first_seq,
            next_timestamp: first_ts,
            marker_pending: true,
            packets_sent: 0,
        }
    }

    /// A stream with a random SSRC, initial sequence number and initial timestamp, as RFC 3550
    /// §5.1 and §8 ask (so that streams are hard to guess and SSRCs unlikely to collide).
    pub fn random(codec: Codec) -> Result<Self, NoRandomness> {
        let mut bytes = [0u8; 10];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| NoRandomness)?;
        let ssrc = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let seq = u16::from_be_bytes([bytes[4], bytes[5]]);
        let ts = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
        Ok(Self::new(codec, ssrc, seq, ts))
    }

    /// Encodes one frame of at most [`SAMPLES_PER_PACKET`] samples (a shorter one is padded with
    /// silence to the full 20 ms) and returns the packet; sequence number and timestamp advance only
    /// when a packet is returned.
    pub fn packetize(&mut self, frame: &[i16]) -> Result<RtpPacket, PacketizeError> {
        if frame.len() > SAMPLES_PER_PACKET {
            return Err(PacketizeError::FrameTooLong(frame.len()));
        }
        let mut payload = [self.codec.silence(); SAMPLES_PER_PACKET];
        self.codec.encode_slice(frame, &mut payload);

        let mut packet = [0u8; PACKET_LEN];
        let len = RtpPacketBuilder::new()
            .payload_type(self.codec.payload_type())
            .marked(self.marker_pending)
            .sequence(Seq::from(self.next_seq))
            .timestamp(self.next_timestamp)
            .ssrc(self.ssrc)
            .payload(&payload)
            .build_into(&mut packet)
            .map_err(|e| PacketizeError::Build(format!("{e:?}")))?;
        if len != PACKET_LEN {
            return Err(PacketizeError::Build(format!("unexpected length {len}")));
        }

        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_timestamp = self.next_timestamp.wrapping_add(SAMPLES_PER_PACKET as u32);
        self.marker_pending = false;
        self.packets_sent += 1;
        Ok(packet)
    }

    /// Accounts for `frames` 20 ms slots in which nothing was sent (e.g. the pacing loop was
    /// stalled and dropped them): the timestamp moves on by their duration, the sequence number does
    /// not (RFC 3550 §5.1), and the next packet starts a new talkspurt with the marker bit
    /// (RFC 3551 §4.1). `skip_frames(0)` only marks the next packet.
    pub fn skip_frames(&mut self, frames: u32) {
        self.next_timestamp = self
            .next_timestamp
            .wrapping_add(frames.wrapping_mul(SAMPLES_PER_PACKET as u32));
        self.marker_pending = true;
    }

    /// The negotiated codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The stream's synchronisation source identifier.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_seq
    }

    /// The timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// Packets produced so far (the RTCP sender's packet count, should RTCP be added).
    pub fn packets_sent(&self) -> u64 {
        self.packets_sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::g711::{decode_alaw, encode_ulaw};
    use rtp_rs::RtpReader;

    fn ramp(len: usize, offset: i16) -> Vec<i16> {
        (0..len).map(|i| offset + (i as i16) * 50).collect()
    }

    #[test]
    fn constants_describe_20_ms_of_g711() {
        assert_eq!(SAMPLES_PER_PACKET, 160);
        assert_eq!(PACKET_LEN, 172);
        assert_eq!(PACKET_INTERVAL, Duration::from_millis(20));
    }

    #[test]
    fn every_field_survives_a_sequence_and_timestamp_wrap() {
        let ssrc = 0xDEAD_BEEF;
        let first_seq = u16::MAX - 2;
        let first_ts = u32::MAX - 200;
        let mut p = Packetizer::new(Codec::Pcmu, ssrc, first_seq, first_ts);
        for n in 0u16..6 {
            let frame = ramp(SAMPLES_PER_PACKET, n as i16 * 100);
            let bytes = p.packetize(&frame).unwrap();
            let rtp = RtpReader::new(&bytes).unwrap();
            assert_eq!(rtp.version(), 2);
            assert_eq!(rtp.padding(), None);
            assert_eq!(rtp.csrc_count(), 0);
            assert!(rtp.extension().is_none());
            assert_eq!(rtp.payload_type(), 0);
            assert_eq!(rtp.ssrc(), ssrc);
            assert_eq!(rtp.mark(), n == 0, "packet {n}");
            assert_eq!(
                u16::from(rtp.sequence_number()),
                first_seq.wrapping_add(n),
                "packet {n}"
            );
            assert_eq!(
                rtp.timestamp(),
                first_ts.wrapping_add(u32::from(n) * 160),
                "packet {n}"
            );
            let expected: Vec<u8> = frame.iter().map(|&s| encode_ulaw(s)).collect();
            assert_eq!(rtp.payload(), &expected[..]);
        }
        // Sequence went 65533, 65534, 65535, 0, 1, 2; the timestamp wrapped between packets 1 and 2.
        assert_eq!(p.next_sequence(), 3);
        assert_eq!(p.next_timestamp(), first_ts.wrapping_add(6 * 160));
        assert_eq!(p.packets_sent(), 6);
    }

    #[test]
    fn pcma_uses_payload_type_8_and_a_law() {
        let mut p = Packetizer::new(Codec::Pcma, 7, 0, 0);
        let frame = ramp(SAMPLES_PER_PACKET, -4000);
        let bytes = p.packetize(&frame).unwrap();
        let rtp = RtpReader::new(&bytes).unwrap();
        assert_eq!(rtp.payload_type(), 8);
        let decoded: Vec<i16> = rtp.payload().iter().map(|&c| decode_alaw(c)).collect();
        for (d, s) in decoded.iter().zip(&frame) {
            assert!((d - s).abs() <= 128, "{s} -> {d}");
        }
    }

    #[test]
    fn a_short_frame_is_padded_with_silence() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut p = Packetizer::new(codec, 1, 10, 1000);
            let bytes = p.packetize(&[1000; 100]).unwrap();
            let rtp = RtpReader::new(&bytes).unwrap();
            assert_eq!(rtp.payload().len(), 160);
            assert!(rtp.payload()[..100]
                .iter()
                .all(|&c| c == codec.encode(1000)));
            assert!(rtp.payload()[100..].iter().all(|&c| c == codec.silence()));
            // A padded frame still counts as a full 20 ms.
            assert_eq!(p.next_timestamp(), 1160);

            let empty = p.packetize(&[]).unwrap();
            let rtp = RtpReader::new(&empty).unwrap();
            assert!(rtp.payload().iter().all(|&c| c == codec.silence()));
        }
    }

    #[test]
    fn a_long_frame_is_refused_without_advancing() {
        let mut p = Packetizer::new(Codec::Pcmu, 1, 10, 1000);
        assert_eq!(
            p.packetize(&[0; 161]),
            Err(PacketizeError::FrameTooLong(161))
        );
        assert_eq!((p.next_sequence(), p.next_timestamp()), (10, 1000));
        let rtp_bytes = p.packetize(&[0; 160]).unwrap();
        // The refused frame did not consume the marker.
        assert!(RtpReader::new(&rtp_bytes).unwrap().mark());
    }

    #[test]
    fn skipped_frames_move_the_timestamp_and_mark_a_new_talkspurt() {
        let mut p = Packetizer::new(Codec::Pcmu, 1, 100, 0);
        p.packetize(&[0; 160]).unwrap();
        p.packetize(&[0; 160]).unwrap();
        p.skip_frames(3);
        let bytes = p.packetize(&[0; 160]).unwrap();
        let rtp = RtpReader::new(&bytes).unwrap();
        assert!(rtp.mark());
        assert_eq!(u16::from(rtp.sequence_number()), 102);
        assert_eq!(rtp.timestamp(), 5 * 160);
        let bytes = p.packetize(&[0; 160]).unwrap();
        assert!(!RtpReader::new(&bytes).unwrap().mark());
    }

    #[test]
    fn random_streams_differ() {
        let a = Packetizer::random(Codec::Pcmu).unwrap();
        let b = Packetizer::random(Codec::Pcmu).unwrap();
        // 2^-80 chance of a false failure.
        assert_ne!(
            (a.ssrc(), a.next_sequence(), a.next_timestamp()),
            (b.ssrc(), b.next_sequence(), b.next_timestamp())
        );
        assert_eq!(a.packets_sent(), 0);
    }
}
