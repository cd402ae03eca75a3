//! The audio of one call: the prompt clips of `OTP_MESSAGE_TEMPLATE` with the code read digit by
//! digit, cut into 20 ms frames on the fly (SPEC §7).
//!
//! Layout of a plan: [`LEAD_IN`] of silence, then the template's parts back to back exactly as the
//! clips were recorded — a clip part plays its clip, a `{code}` part plays the digit clips of the
//! code with the [`DigitGap`] of `OTP_VOICE_SPEED` between two digits (and no gap before the first
//! or after the last) — then [`TAIL_SILENCE`]. The last frame is padded with silence.
//!
//! Nothing is rendered ahead: a plan is a short list of segments pointing at the shared clips
//! (`Arc<[i16]>`) and silences, and each frame is copied out when it is asked for, so a call costs a
//! few hundred bytes however long the prompt is. Neither the code nor its audio is ever written to
//! disk, and the `Debug` output of plans and frames leaves the audio out.
//!
//! Each [`Frame`] says whether it is the first one carrying code audio (send, then emit `playing`)
//! and whether it completes the first full reading of the code (send, then `otp_played` is true).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::g711::SAMPLE_RATE_HZ;
use super::packetizer::{PACKET_INTERVAL, SAMPLES_PER_PACKET};

/// Silence before the first clip. RTP starts right after the 2xx, while the callee's handset is
/// still being brought to the ear and the carrier may still be switching the media path (latching
/// symmetric RTP on our first packets); 200 ms keeps the first syllable of the intro from being cut.
pub const LEAD_IN: Duration = Duration::from_millis(200);

/// Silence after the last clip. The call is hung up when the plan ends, and BYE tears down the
/// media at once; 300 ms covers the far end's jitter buffer and transit, so the goodbye is heard in
/// full.
pub const TAIL_SILENCE: Duration = Duration::from_millis(300);

/// Every clip a prompt set has to provide: `intro`, the digits `0`–`9`, `repeating`, `goodbye`.
pub const CLIP_NAMES: [&str; 13] = [
    "intro",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "repeating",
    "goodbye",
];

/// One element of the message template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PromptPart {
    /// A clip played as recorded, by name (`intro`, `repeating`, `goodbye`, `0`–`9`).
    Clip(String),
    /// `{code}`: the code's digit clips with the digit gap between them.
    Code,
}

/// The prompt clips of one language: 8 kHz mono 16-bit samples by clip name. Cheap to clone and
/// share between calls.
#[derive(Clone, Default)]
pub struct Clips {
    clips: HashMap<String, Arc<[i16]>>,
}

impl Clips {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the clip `name`; `samples` are 8 kHz mono linear PCM.
    pub fn insert(&mut self, name: impl Into<String>, samples: impl Into<Arc<[i16]>>) {
        self.clips.insert(name.into(), samples.into());
    }

    /// The samples of clip `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<[i16]>> {
        self.clips.get(name)
    }

    /// The names of [`CLIP_NAMES`] that are absent or empty, for validation at start-up.
    pub fn missing(&self) -> Vec<&'static str> {
        CLIP_NAMES
            .into_iter()
            .filter(|name| self.get(name).is_none_or(|clip| clip.is_empty()))
            .collect()
    }

    fn audio(&self, name: &str) -> Result<&Arc<[i16]>, PromptError> {
        match self.get(name) {
            None => Err(PromptError::MissingClip(name.to_string())),
            Some(clip) if clip.is_empty() => Err(PromptError::EmptyClip(name.to_string())),
            Some(clip) => Ok(clip),
        }
    }
}

impl fmt::Debug for Clips {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.clips.iter().map(|(n, c)| (n, c.len())).collect();
        names.sort();
        f.debug_map().entries(names).finish()
    }
}

/// The silence between two digits of the code, from `OTP_VOICE_SPEED`.
///
/// The gap comes on top of whatever silence the digit recordings carry. The presets are a choice:
/// medium (350 ms, the default) is an IVR-style pause long enough to write a digit down; slow
/// (600 ms) is for noisy lines and listeners who need more time; fast (150 ms) still separates the
/// digits clearly for people who only need to hear the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DigitGap {
    millis: u32,
}

impl DigitGap {
    /// `OTP_VOICE_SPEED=slow`: 600 ms.
    pub const SLOW: DigitGap = DigitGap::from_millis(600);
    /// `OTP_VOICE_SPEED=medium`: 350 ms.
    pub const MEDIUM: DigitGap = DigitGap::from_millis(350);
    /// `OTP_VOICE_SPEED=fast`: 150 ms.
    pub const FAST: DigitGap = DigitGap::from_millis(150);

    /// A gap of `millis` milliseconds.
    pub const fn from_millis(millis: u32) -> Self {
        Self { millis }
    }

    /// The gap as a duration.
    pub const fn duration(self) -> Duration {
        Duration::from_millis(self.millis as u64)
    }

    /// The gap in samples at 8 kHz.
    pub const fn samples(self) -> usize {
        self.millis as usize * (SAMPLE_RATE_HZ as usize / 1000)
    }
}

/// Why a plan could not be built. Messages never contain the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// The template or the code needs a clip the set does not have.
    #[error("prompt clip {0:?} is missing")]
    MissingClip(String),
    /// The clip exists but has no samples.
    #[error("prompt clip {0:?} is empty")]
    EmptyClip(String),
    /// There is no code to read.
    #[error("the code is empty")]
    EmptyCode,
    /// The code has a character other than `0`–`9`.
    #[error("the code contains a character other than a digit")]
    InvalidCode,
    /// The template has no `{code}`, so the call would never read the code.
    #[error("the message template has no {{code}}")]
    NoCode,
}

/// Samples of a duration at 8 kHz.
const fn samples_of(d: Duration) -> usize {
    d.as_millis() as usize * (SAMPLE_RATE_HZ as usize / 1000)
}

#[derive(Clone)]
enum Segment {
    Silence(usize),
    Audio(Arc<[i16]>),
}

impl Segment {
    fn len(&self) -> usize {
        match self {
            Segment::Silence(n) => *n,
            Segment::Audio(samples) => samples.len(),
        }
    }
}

/// Segments being laid out, and the sample position after the last one.
#[derive(Default)]
struct Layout {
    segments: Vec<Segment>,
    position: usize,
}

impl Layout {
    fn push(&mut self, segment: Segment) {
        self.position += segment.len();
        // A zero gap adds no segment.
        if segment.len() > 0 {
            self.segments.push(segment);
        }
    }
}

/// One 20 ms frame of the prompt.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// 160 samples, 8 kHz linear PCM (silence-padded at the end of the plan).
    pub samples: [i16; SAMPLES_PER_PACKET],
    /// Position in the plan, from 0; the pacing loop sends it at `start + index × 20 ms`.
    pub index: usize,
    /// The first frame carrying code audio: once it is sent, emit `playing`.
    pub starts_code: bool,
    /// The frame carrying the last sample of the code's first complete reading: once it is sent,
    /// the code has been played (`otp_played`).
    pub completes_code: bool,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("index", &self.index)
            .field("starts_code", &self.starts_code)
            .field("completes_code", &self.completes_code)
            .finish_non_exhaustive()
    }
}

/// The prompt of one call and a cursor over its frames ([`Iterator`] of [`Frame`]).
#[derive(Clone)]
pub struct PromptPlan {
    segments: Vec<Segment>,
    total_samples: usize,
    frame_count: usize,
    playing_frame: usize,
    otp_played_frame: usize,
    // Cursor: the next frame, and where its first sample is.
    next_index: usize,
    segment: usize,
    offset: usize,
}

impl PromptPlan {
    /// Lays out `parts` with `code` spelled out in `clips`, `gap` between the code's digits. Fails
    /// on an empty or non-numeric code, a template without `{code}`, and a missing or empty clip.
    pub fn build(
        parts: &[PromptPart],
        code: &str,
        clips: &Clips,
        gap: DigitGap,
    ) -> Result<Self, PromptError> {
        if code.is_empty() {
            return Err(PromptError::EmptyCode);
        }
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PromptError::InvalidCode);
        }
        if !parts.contains(&PromptPart::Code) {
            return Err(PromptError::NoCode);
        }

        let mut layout = Layout::default();
        layout.push(Segment::Silence(samples_of(LEAD_IN)));
        // (first sample of the first digit, one past the last sample of the last digit) of the
        // code's first reading.
        let mut first_code: Option<(usize, usize)> = None;
        for part in parts {
            match part {
                PromptPart::Clip(name) => {
                    layout.push(Segment::Audio(Arc::clone(clips.audio(name)?)));
                }
                PromptPart::Code => {
                    let start = layout.position;
                    for (i, digit) in code.chars().enumerate() {
                        if i > 0 {
                            layout.push(Segment::Silence(gap.samples()));
                        }
                        let clip = clips.audio(digit.encode_utf8(&mut [0u8; 4]))?;
                        layout.push(Segment::Audio(Arc::clone(clip)));
                    }
                    first_code.get_or_insert((start, layout.position));
                }
            }
        }
        layout.push(Segment::Silence(samples_of(TAIL_SILENCE)));
        // `parts` contains `Code` and the code is non-empty, so this is always set.
        let (code_start, code_end) = first_code.ok_or(PromptError::NoCode)?;
        let Layout {
            segments,
            position: total_samples,
        } = layout;

        Ok(Self {
            segments,
            total_samples,
            frame_count: total_samples.div_ceil(SAMPLES_PER_PACKET),
            playing_frame: code_start / SAMPLES_PER_PACKET,
            otp_played_frame: code_end.saturating_sub(1) / SAMPLES_PER_PACKET,
            next_index: 0,
            segment: 0,
            offset: 0,
        })
    }

    /// Frames in the whole plan.
    pub fn frame_count(&self) -> usize {
        self.frame_count
    }

    /// Samples in the whole plan before the last frame is padded.
    pub fn total_samples(&self) -> usize {
        self.total_samples
    }

    /// Playing time of the whole plan (frames × 20 ms).
    pub fn duration(&self) -> Duration {
        PACKET_INTERVAL * self.frame_count as u32
    }

    /// Index of the first frame with code audio (`playing`).
    pub fn playing_frame(&self) -> usize {
        self.playing_frame
    }

    /// Index of the frame that completes the code's first reading (`otp_played`).
    pub fn otp_played_frame(&self) -> usize {
        self.otp_played_frame
    }

    /// Index of the frame [`Iterator::next`] returns next (= frames already taken).
    pub fn next_index(&self) -> usize {
        self.next_index
    }
}

impl Iterator for PromptPlan {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if self.next_index >= self.frame_count {
            return None;
        }
        let mut samples = [0i16; SAMPLES_PER_PACKET];
        let mut filled = 0;
        while filled < SAMPLES_PER_PACKET {
            let Some(segment) = self.segments.get(self.segment) else {
                break;
            };
            let n = (segment.len() - self.offset).min(SAMPLES_PER_PACKET - filled);
            if let Segment::Audio(audio) = segment {
                samples[filled..filled + n].copy_from_slice(&audio[self.offset..self.offset + n]);
            }
            filled += n;
            self.offset += n;
            if self.offset == segment.len() {
                self.segment += 1;
                self.offset = 0;
            }
        }
        let index = self.next_index;
        self.next_index += 1;
        Some(Frame {
            samples,
            index,
            starts_code: index == self.playing_frame,
            completes_code: index == self.otp_played_frame,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.frame_count - self.next_index;
        (left, Some(left))
    }
}

impl ExactSizeIterator for PromptPlan {}

impl fmt::Debug for PromptPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The segments spell the code: leave them out.
        f.debug_struct("PromptPlan")
            .field("frame_count", &self.frame_count)
            .field("playing_frame", &self.playing_frame)
            .field("otp_played_frame", &self.otp_played_frame)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTRO: usize = 1000;
    const DIGIT: usize = 400;
    const REPEATING: usize = 480;
    const GOODBYE: usize = 640;

    /// Clips of constant, distinct levels: intro 1, repeating 2, goodbye 3, digit d 100 + d.
    fn clips() -> Clips {
        let mut clips = Clips::new();
        clips.insert("intro", vec![1i16; INTRO]);
        clips.insert("repeating", vec![2i16; REPEATING]);
        clips.insert("goodbye", vec![3i16; GOODBYE]);
        for d in 0..10i16 {
            clips.insert(d.to_string(), vec![100 + d; DIGIT]);
        }
        clips
    }

    fn default_template() -> Vec<PromptPart> {
        vec![
            PromptPart::Clip("intro".into()),
            PromptPart::Code,
            PromptPart::Clip("repeating".into()),
            PromptPart::Code,
            PromptPart::Clip("goodbye".into()),
        ]
    }

    fn silence(n: usize) -> Vec<i16> {
        vec![0; n]
    }

    /// The expected stream, written out naively.
    fn expected_stream(code: &str, gap: usize) -> Vec<i16> {
        let mut code_audio = Vec::new();
        for (i, d) in code.bytes().enumerate() {
            if i > 0 {
                code_audio.extend(silence(gap));
            }
            code_audio.extend(vec![100 + i16::from(d - b'0'); DIGIT]);
        }
        let mut stream = silence(1600);
        stream.extend(vec![1; INTRO]);
        stream.extend(&code_audio);
        stream.extend(vec![2; REPEATING]);
        stream.extend(&code_audio);
        stream.extend(vec![3; GOODBYE]);
        stream.extend(silence(2400));
        stream
    }

    #[test]
    fn digit_gaps_follow_the_speed_presets() {
        assert_eq!(DigitGap::SLOW.duration(), Duration::from_millis(600));
        assert_eq!(DigitGap::MEDIUM.duration(), Duration::from_millis(350));
        assert_eq!(DigitGap::FAST.duration(), Duration::from_millis(150));
        assert_eq!(DigitGap::SLOW.samples(), 4800);
        assert_eq!(DigitGap::MEDIUM.samples(), 2800);
        assert_eq!(DigitGap::FAST.samples(), 1200);
    }

    #[test]
    fn total_duration_of_the_default_template() {
        let plan =
            PromptPlan::build(&default_template(), "123", &clips(), DigitGap::MEDIUM).unwrap();
        // lead-in 200 ms + intro + 2 × (3 digits + 2 gaps) + repeating + goodbye + tail 300 ms.
        let code = 3 * DIGIT + 2 * 2800;
        let total = 1600 + INTRO + code + REPEATING + code + GOODBYE + 2400;
        assert_eq!(total, 19720);
        assert_eq!(plan.total_samples(), total);
        assert_eq!(plan.frame_count(), 124, "123.25 frames round up");
        assert_eq!(plan.duration(), Duration::from_millis(2480));
        assert_eq!(plan.len(), 124);
        assert_eq!(plan.count(), 124);
    }

    #[test]
    fn frames_cut_the_stream_at_160_sample_boundaries() {
        for (code, gap) in [
            ("123", DigitGap::MEDIUM),
            ("90817", DigitGap::FAST),
            ("5", DigitGap::SLOW),
        ] {
            let plan = PromptPlan::build(&default_template(), code, &clips(), gap).unwrap();
            let mut expected = expected_stream(code, gap.samples());
            assert_eq!(plan.total_samples(), expected.len(), "{code}");
            expected.resize(plan.frame_count() * SAMPLES_PER_PACKET, 0);
            let mut actual = Vec::new();
            for (i, frame) in plan.enumerate() {
                assert_eq!(frame.index, i);
                actual.extend_from_slice(&frame.samples);
            }
            assert_eq!(actual, expected, "{code}");
        }
    }

    #[test]
    fn playing_and_otp_played_mark_the_first_reading_of_the_code() {
        let plan =
            PromptPlan::build(&default_template(), "123", &clips(), DigitGap::MEDIUM).unwrap();
        // The first digit starts at sample 1600 + 1000 = 2600, inside frame 16 (2560..2720); the
        // last digit of the first reading ends at 2600 + 3 × 400 + 2 × 2800 = 9400, so its last
        // sample (9399) is in frame 58 (9280..9440).
        assert_eq!(plan.playing_frame(), 16);
        assert_eq!(plan.otp_played_frame(), 58);
        let frames: Vec<Frame> = plan.collect();
        let is_digit = |s: &i16| (100..110).contains(s);
        assert!(!frames[15].samples.iter().any(is_digit));
        assert!(frames[16].samples.iter().any(is_digit));
        assert!(frames[58].samples.contains(&103));
        assert!(!frames[59].samples.contains(&103));
        let starts: Vec<usize> = frames
            .iter()
            .filter(|f| f.starts_code)
            .map(|f| f.index)
            .collect();
        let completes: Vec<usize> = frames
            .iter()
            .filter(|f| f.completes_code)
            .map(|f| f.index)
            .collect();
        assert_eq!(starts, [16], "playing is emitted once");
        assert_eq!(completes, [58], "otp_played turns true once");
    }

    #[test]
    fn a_code_on_an_exact_frame_boundary() {
        // Lead-in 1600 + intro 1600 = 3200 = frame 20 exactly; one 320-sample digit ends at 3520,
        // the last sample 3519 in frame 21.
        let mut clips = clips();
        clips.insert("intro", vec![1i16; 1600]);
        clips.insert("4", vec![104i16; 320]);
        let plan = PromptPlan::build(&default_template(), "4", &clips, DigitGap::MEDIUM).unwrap();
        assert_eq!((plan.playing_frame(), plan.otp_played_frame()), (20, 21));
    }

    #[test]
    fn the_gap_is_only_between_digits() {
        let parts = [PromptPart::Code];
        let one = PromptPlan::build(&parts, "7", &clips(), DigitGap::SLOW).unwrap();
        assert_eq!(one.total_samples(), 1600 + DIGIT + 2400);
        let two = PromptPlan::build(&parts, "77", &clips(), DigitGap::SLOW).unwrap();
        assert_eq!(two.total_samples(), 1600 + 2 * DIGIT + 4800 + 2400);
        let none = PromptPlan::build(&parts, "77", &clips(), DigitGap::from_millis(0)).unwrap();
        assert_eq!(none.total_samples(), 1600 + 2 * DIGIT + 2400);
    }

    #[test]
    fn fixed_digit_clips_in_the_template_are_not_the_code() {
        // A template may name digit clips itself; only `{code}` counts for the events.
        let parts = [
            PromptPart::Clip("1".into()),
            PromptPart::Clip("intro".into()),
            PromptPart::Code,
        ];
        let plan = PromptPlan::build(&parts, "2", &clips(), DigitGap::FAST).unwrap();
        assert_eq!(plan.playing_frame(), (1600 + DIGIT + INTRO) / 160);
    }

    #[test]
    fn missing_and_empty_clips_are_reported_by_name() {
        let mut without_seven = clips();
        without_seven.clips.remove("7");
        assert_eq!(
            PromptPlan::build(&default_template(), "1274", &without_seven, DigitGap::FAST)
                .unwrap_err(),
            PromptError::MissingClip("7".into())
        );
        // A digit the code does not use is not needed.
        assert!(
            PromptPlan::build(&default_template(), "1234", &without_seven, DigitGap::FAST).is_ok()
        );
        let parts = [PromptPart::Clip("hello".into()), PromptPart::Code];
        assert_eq!(
            PromptPlan::build(&parts, "1", &clips(), DigitGap::FAST).unwrap_err(),
            PromptError::MissingClip("hello".into())
        );
        let mut empty_goodbye = clips();
        empty_goodbye.insert("goodbye", Vec::<i16>::new());
        assert_eq!(
            PromptPlan::build(&default_template(), "1", &empty_goodbye, DigitGap::FAST)
                .unwrap_err(),
            PromptError::EmptyClip("goodbye".into())
        );
        assert_eq!(without_seven.missing(), ["7"]);
        assert_eq!(empty_goodbye.missing(), ["goodbye"]);
        assert!(clips().missing().is_empty());
        assert_eq!(Clips::new().missing().len(), CLIP_NAMES.len());
    }

    #[test]
    fn bad_codes_and_templates_are_rejected_without_echoing_the_code() {
        let build = |parts: &[PromptPart], code: &str| {
            PromptPlan::build(parts, code, &clips(), DigitGap::MEDIUM).unwrap_err()
        };
        assert_eq!(build(&default_template(), ""), PromptError::EmptyCode);
        let err = build(&default_template(), "12a4");
        assert_eq!(err, PromptError::InvalidCode);
        assert!(!err.to_string().contains("12a4"));
        assert_eq!(build(&default_template(), "１２"), PromptError::InvalidCode);
        assert_eq!(
            build(&[PromptPart::Clip("intro".into())], "1234"),
            PromptError::NoCode
        );
    }

    #[test]
    fn debug_output_leaves_the_audio_out() {
        let mut plan =
            PromptPlan::build(&default_template(), "987", &clips(), DigitGap::FAST).unwrap();
        let plan_debug = format!("{plan:?}");
        assert!(plan_debug.contains("frame_count"));
        assert!(!plan_debug.contains("109"));
        let frame = plan.nth(20).unwrap();
        let frame_debug = format!("{frame:?}");
        assert!(frame_debug.contains("index: 20"));
        assert!(!frame_debug.contains("samples"));
        assert_eq!(plan.next_index(), 21);
        assert_eq!(plan.len(), plan.frame_count() - 21);
    }
}
