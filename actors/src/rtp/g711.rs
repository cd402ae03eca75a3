//! ITU-T G.711 (11/1988) "Pulse code modulation (PCM) of voice frequencies": the µ-law (PCMU) and
//! A-law (PCMA) companding laws that every SIP trunk accepts, written out here rather than pulled in
//! as a crate because each direction is a few lines.
//!
//! The encoders take 16-bit linear PCM, as the prompt clips are stored, and implement the segment
//! tables of G.711 (Table 1 A-law, Table 2 µ-law) bit-exactly as the ITU-T G.191 software tools'
//! `g711.c` (`alaw_compress`, `ulaw_compress`) do: negative samples take the one's complement,
//! µ-law uses the top 14 bits plus a bias of 33 (0x84 on the 16-bit scale) clipped at 0x1FFF, A-law
//! the top 13 bits. The decoders return the mid-point of each quantisation interval (`*_expand`).
//! Codewords carry the inversions G.711 prescribes (µ-law: all bits, A-law: even bits, XOR 0x55), so
//! `encode_ulaw(0) == 0xFF` and `encode_alaw(0) == 0xD5`.
//!
//! RTP payload types and SDP names come from RFC 3551 §6, Table 4 (PCMU = 0, PCMA = 8, 8000 Hz).

/// Sampling rate of both G.711 laws (and the RTP clock rate of PCMU/PCMA, RFC 3551 §4.5.14), in Hz.
pub const SAMPLE_RATE_HZ: u32 = 8000;

/// µ-law bias added to the magnitude before the segment search (0x84 = 132 on the 16-bit scale).
const ULAW_BIAS: i32 = 0x84;

/// Largest µ-law magnitude before clipping: 32635 + bias = 0x7FFF, the top of segment 7.
const ULAW_CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample as a G.711 µ-law codeword (sign-magnitude, all bits inverted).
pub fn encode_ulaw(sample: i16) -> u8 {
    // Negative samples use the one's complement, as G.191 does: -1 becomes "negative zero" and the
    // negative half mirrors the positive one exactly (-32768 ↔ 32767).
    let (magnitude, sign) = if sample < 0 {
        (i32::from(!sample), 0x80)
    } else {
        (i32::from(sample), 0x00)
    };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // The biased magnitude lies in 0x84..=0x7FFF: its highest set bit is bit 7..=14, which gives
    // segment (exponent) 0..=7; the four bits below it are the mantissa.
    let exponent = (31 - biased.leading_zeros() as i32) - 7;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes a G.711 µ-law codeword to a 16-bit linear sample (the interval's mid-point).
pub fn decode_ulaw(codeword: u8) -> i16 {
    let c = !codeword;
    let exponent = i32::from((c >> 4) & 0x07);
    let mantissa = i32::from(c & 0x0F);
    let biased = ((mantissa << 3) + ULAW_BIAS) << exponent;
    let value = if c & 0x80 != 0 {
        ULAW_BIAS - biased
    } else {
        biased - ULAW_BIAS
    };
    // |value| <= 32124 by construction.
    value as i16
}

/// Encodes one 16-bit linear sample as a G.711 A-law codeword (even bits inverted).
pub fn encode_alaw(sample: i16) -> u8 {
    // A-law quantises 13-bit linear samples.
    let linear = i32::from(sample) >> 3;
    let (magnitude, mask) = if linear >= 0 {
        (linear, 0xD5)
    } else {
        // One's complement, so that -1 (the smallest negative) lands in the first interval.
        (-linear - 1, 0x55)
    };
    // magnitude is 0..=4095 (12 bits). Segment 0 covers 0..=31 with step 2; segment s >= 1 covers
    // 2^(s+4)..2^(s+5) with step 2^s.
    let segment = (32 - (magnitude as u32).leading_zeros()).saturating_sub(5) as i32;
    let mantissa = if segment == 0 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    ((segment << 4) | mantissa) as u8 ^ mask
}

/// Decodes a G.711 A-law codeword to a 16-bit linear sample (the interval's mid-point).
pub fn decode_alaw(codeword: u8) -> i16 {
    let c = codeword ^ 0x55;
    let mantissa = i32::from(c & 0x0F);
    let segment = i32::from((c >> 4) & 0x07);
    let magnitude = match segment {
        0 => (mantissa << 4) + 8,
        _ => ((mantissa << 4) + 0x108) << (segment - 1),
    };
    // magnitude <= 32256 by construction.
    let value = if c & 0x80 != 0 { magnitude } else { -magnitude };
    value as i16
}

/// Encodes `pcm` into `out` as µ-law, sample by sample, up to the shorter of the two lengths.
pub fn encode_ulaw_slice(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = encode_ulaw(s);
    }
}

/// Decodes µ-law `codewords` into `out`, up to the shorter of the two lengths.
pub fn decode_ulaw_slice(codewords: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codewords) {
        *o = decode_ulaw(c);
    }
}

/// Encodes `pcm` into `out` as A-law, sample by sample, up to the shorter of the two lengths.
pub fn encode_alaw_slice(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = encode_alaw(s);
    }
}

/// Decodes A-law `codewords` into `out`, up to the shorter of the two lengths.
pub fn decode_alaw_slice(codewords: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codewords) {
        *o = decode_alaw(c);
    }
}

/// The G.711 codec negotiated for a call (RFC 3551 §6, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, static payload type 0, SDP `PCMU/8000`.
    Pcmu,
    /// A-law, static payload type 8, SDP `PCMA/8000`.
    Pcma,
}

impl Codec {
    /// The static RTP payload type: 0 for PCMU, 8 for PCMA.
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec of a static payload type, `None` for anything but 0 and 8.
    pub const fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The encoding name of the SDP `a=rtpmap` line (`PCMU`, `PCMA`); the clock rate is
    /// [`SAMPLE_RATE_HZ`].
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codeword of digital silence (linear 0): 0xFF for µ-law, 0xD5 for A-law.
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Encodes one sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => encode_ulaw(sample),
            Codec::Pcma => encode_alaw(sample),
        }
    }

    /// Decodes one codeword.
    pub fn decode(self, codeword: u8) -> i16 {
        match self {
            Codec::Pcmu => decode_ulaw(codeword),
            Codec::Pcma => decode_alaw(codeword),
        }
    }

    /// Encodes `pcm` into `out`, up to the shorter of the two lengths.
    pub fn encode_slice(self, pcm: &[i16], out: &mut [u8]) {
        match self {
            Codec::Pcmu => encode_ulaw_slice(pcm, out),
            Codec::Pcma => encode_alaw_slice(pcm, out),
        }
    }

    /// Decodes `codewords` into `out`, up to the shorter of the two lengths.
    pub fn decode_slice(self, codewords: &[u8], out: &mut [i16]) {
        match self {
            Codec::Pcmu => decode_ulaw_slice(codewords, out),
            Codec::Pcma => decode_alaw_slice(codewords, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_samples() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    #[test]
    fn silence_codewords_match_g711() {
        assert_eq!(encode_ulaw(0), 0xFF);
        assert_eq!(encode_alaw(0), 0xD5);
        assert_eq!(decode_ulaw(0xFF), 0);
        // A-law has no zero level: 0xD5 is the first positive interval, mid-point 8.
        assert_eq!(decode_alaw(0xD5), 8);
        assert_eq!(Codec::Pcmu.silence(), encode_ulaw(0));
        assert_eq!(Codec::Pcma.silence(), encode_alaw(0));
    }

    #[test]
    fn known_ulaw_values() {
        // Negative zero and the extremes of G.711 Table 2a (16-bit scale).
        assert_eq!(encode_ulaw(-1), 0x7F);
        assert_eq!(decode_ulaw(0x7F), 0);
        assert_eq!(encode_ulaw(i16::MAX), 0x80);
        assert_eq!(encode_ulaw(i16::MIN), 0x00);
        assert_eq!(decode_ulaw(0x80), 32124);
        assert_eq!(decode_ulaw(0x00), -32124);
        // Segment 1 starts where the biased magnitude reaches 256, i.e. at 124.
        assert_eq!(encode_ulaw(123), 0xF0);
        assert_eq!(encode_ulaw(124), 0xEF);
        assert_eq!(decode_ulaw(0xEF), 132);
    }

    #[test]
    fn known_alaw_values() {
        assert_eq!(encode_alaw(-1), 0x55);
        assert_eq!(decode_alaw(0x55), -8);
        assert_eq!(encode_alaw(i16::MAX), 0xAA);
        assert_eq!(encode_alaw(i16::MIN), 0x2A);
        assert_eq!(decode_alaw(0xAA), 32256);
        assert_eq!(decode_alaw(0x2A), -32256);
        // Segment 1 starts at 13-bit 32, i.e. 16-bit 256.
        assert_eq!(encode_alaw(255), 0x0F ^ 0xD5);
        assert_eq!(encode_alaw(256), 0x10 ^ 0xD5);
    }

    #[test]
    fn matches_reference_implementations() {
        // Spot values computed with the ITU-T G.191 `g711.c` algorithm (A-law also with CPython's
        // `audioop.lin2alaw`); the whole 16-bit range was compared once while writing this module.
        let table: [(i16, u8, u8); 8] = [
            (1000, 0xCE, 0xFA),
            (-1000, 0x4E, 0x7A),
            (5000, 0xAB, 0x86),
            (-5000, 0x2B, 0x06),
            (20000, 0x8C, 0xA6),
            (-20000, 0x0C, 0x26),
            (-4, 0x7F, 0x55),
            (-5, 0x7E, 0x55),
        ];
        for (sample, ulaw, alaw) in table {
            assert_eq!(encode_ulaw(sample), ulaw, "µ-law {sample}");
            assert_eq!(encode_alaw(sample), alaw, "A-law {sample}");
        }
    }

    #[test]
    fn clipping_at_the_extremes() {
        for s in [32635, 32700, i16::MAX] {
            assert_eq!(decode_ulaw(encode_ulaw(s)), 32124, "{s}");
        }
        for s in [-32635, -32700, i16::MIN + 1, i16::MIN] {
            assert_eq!(decode_ulaw(encode_ulaw(s)), -32124, "{s}");
        }
        for s in [32256, 32700, i16::MAX] {
            assert_eq!(decode_alaw(encode_alaw(s)), 32256, "{s}");
        }
        for s in [-32257, -32700, i16::MIN] {
            assert_eq!(decode_alaw(encode_alaw(s)), -32256, "{s}");
        }
    }

    #[test]
    fn every_codeword_round_trips() {
        for c in 0..=u8::MAX {
            // µ-law has two zeros: negative zero (0x7F) decodes to 0, which encodes as 0xFF.
            let expected = if c == 0x7F { 0xFF } else { c };
            assert_eq!(encode_ulaw(decode_ulaw(c)), expected, "µ-law {c:#04x}");
        }
        for c in 0..=u8::MAX {
            // A-law has no zero level, so every codeword decodes to a distinct level.
            assert_eq!(encode_alaw(decode_alaw(c)), c, "A-law {c:#04x}");
        }
    }

    #[test]
    fn ulaw_round_trip_error_is_within_half_a_step() {
        for s in all_samples() {
            let back = decode_ulaw(encode_ulaw(s));
            let err = (i32::from(back) - i32::from(s)).abs();
            let magnitude = i32::from(s).abs();
            if magnitude <= ULAW_CLIP {
                // Segment e spans [2^(e+7), 2^(e+8)) after biasing with a step of 2^(e+3): half a
                // step is at most (|x| + bias) / 32.
                assert!(err * 32 <= magnitude + ULAW_BIAS, "{s} -> {back}");
            } else {
                assert_eq!(back.unsigned_abs(), 32124, "{s}");
            }
        }
    }

    #[test]
    fn alaw_round_trip_error_is_within_half_a_step() {
        for s in all_samples() {
            let back = decode_alaw(encode_alaw(s));
            let err = (i32::from(back) - i32::from(s)).abs();
            let magnitude = i32::from(s).abs();
            if magnitude < 32256 {
                // Segment 0 and 1 step 16 (half 8); segment s >= 2 starts at 2^(s+7) with a step of
                // 2^(s+3), so half a step is at most |x| / 32.
                assert!(err <= 8.max(magnitude / 32), "{s} -> {back}");
            } else {
                assert!(back.unsigned_abs() == 32256 && err <= 512, "{s} -> {back}");
            }
        }
    }

    #[test]
    fn decoded_levels_are_monotonic_over_the_full_range() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut previous = i16::MIN;
            for s in all_samples() {
                let back = codec.decode(codec.encode(s));
                assert!(back >= previous, "{codec:?}: {s} -> {back} < {previous}");
                previous = back;
            }
            // The sign is never flipped.
            for s in all_samples() {
                let back = codec.decode(codec.encode(s));
                assert!(i32::from(back).signum() * i32::from(s).signum() >= 0, "{s}");
            }
        }
    }

    #[test]
    fn slice_helpers_match_the_scalar_functions() {
        let pcm: Vec<i16> = (-20..20).map(|i| i * 1601).collect();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut encoded = vec![0u8; pcm.len()];
            codec.encode_slice(&pcm, &mut encoded);
            let expected: Vec<u8> = pcm.iter().map(|&s| codec.encode(s)).collect();
            assert_eq!(encoded, expected);
            let mut decoded = vec![0i16; pcm.len()];
            codec.decode_slice(&encoded, &mut decoded);
            let expected: Vec<i16> = encoded.iter().map(|&c| codec.decode(c)).collect();
            assert_eq!(decoded, expected);
        }
        // Mismatched lengths stop at the shorter one.
        let mut short = [0u8; 2];
        encode_ulaw_slice(&[0, 0, 0], &mut short);
        assert_eq!(short, [0xFF, 0xFF]);
    }

    #[test]
    fn payload_types_follow_rfc_3551() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(101), None);
        assert_eq!(Codec::Pcmu.encoding_name(), "PCMU");
        assert_eq!(Codec::Pcma.encoding_name(), "PCMA");
    }
}
