//! Voice prompt clips (SPEC §7): the built-in clips embedded in the binary, and `VOICE_PROMPTS_DIR`
//! recordings checked at start-up.

// Test helpers panic on failure too (clippy's test allowance covers only #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use otp_gateway::config::{PromptPart, VoiceConfig, VoiceSpeed};
use otp_gateway::voice::prompts::{PromptClips, PromptError, PromptSource, CLIP_NAMES};

const RATE: u32 = 8000;

fn spec(sample_rate: u32, channels: u16, bits: u16) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Writes a clip of `len` samples (a quiet ramp) in the given format.
fn write_wav(path: &Path, spec: hound::WavSpec, len: usize) {
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..len {
        for _ in 0..spec.channels {
            let v = (i % 200) as i32 - 100;
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => writer.write_sample(v as f32 / 100.0).unwrap(),
                (_, 8) => writer.write_sample(v as i8).unwrap(),
                _ => writer.write_sample((v * 100) as i16).unwrap(),
            }
        }
    }
    writer.finalize().unwrap();
}

/// A folder holding a good 8 kHz mono 16-bit clip of `len` samples for every name.
fn good_clips(dir: &Path, len: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for name in CLIP_NAMES {
        write_wav(&dir.join(format!("{name}.wav")), spec(RATE, 1, 16), len);
    }
}

fn invalid_clips(err: PromptError) -> (PathBuf, Vec<(PathBuf, String)>, String) {
    let message = err.to_string();
    match err {
        PromptError::InvalidClips { dir, problems } => (
            dir,
            problems.into_iter().map(|p| (p.path, p.problem)).collect(),
            message,
        ),
        other => panic!("expected InvalidClips, got {other:?}"),
    }
}

/// Loads `dir` expecting exactly one bad clip, `name`, and returns its problem.
fn single_problem(dir: &Path, name: &str) -> String {
    let err = PromptClips::from_dir(dir, "en").unwrap_err();
    let (_, problems, message) = invalid_clips(err);
    let path = dir.join(format!("{name}.wav"));
    assert_eq!(problems.len(), 1, "{message}");
    assert_eq!(problems[0].0, path);
    assert!(
        message.contains(&path.display().to_string()),
        "the start-up error names the file: {message}"
    );
    problems[0].1.clone()
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

#[test]
fn builtin_english_has_13_audible_clips_of_sensible_length() {
    let clips = PromptClips::builtin("en").unwrap();
    assert_eq!(clips.language(), "en");
    assert_eq!(clips.source(), &PromptSource::BuiltIn);
    assert_eq!(clips.iter().count(), 13);
    for (name, samples) in clips.iter() {
        let secs = PromptClips::duration_of(samples).as_secs_f64();
        assert!((0.2..=3.0).contains(&secs), "{name}.wav lasts {secs:.3} s");
        // Normalised to about -3 dBFS peak: speech RMS sits well above -30 dBFS (~1000).
        let level = rms(samples);
        assert!(
            level > 1000.0,
            "{name}.wav is nearly silent (RMS {level:.0})"
        );
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(
            (16_000..=32_000).contains(&peak),
            "{name}.wav peaks at {peak}, expected about -3 dBFS (23 197)"
        );
    }
    for part in [
        PromptPart::Intro,
        PromptPart::Repeating,
        PromptPart::Goodbye,
    ] {
        assert!(clips.part(part).is_some(), "{part:?}");
    }
    for d in 0..=9 {
        assert!(clips.part(PromptPart::Digit(d)).is_some());
    }
}

#[test]
fn committed_assets_are_8khz_mono_16bit_pcm() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/prompts/en");
    for name in CLIP_NAMES {
        let reader = hound::WavReader::open(dir.join(format!("{name}.wav"))).unwrap();
        assert_eq!(reader.spec(), spec(RATE, 1, 16), "{name}.wav");
    }
    // The same files pass the VOICE_PROMPTS_DIR checks.
    let clips = PromptClips::from_dir(dir.parent().unwrap(), "en").unwrap();
    assert_eq!(clips.source(), &PromptSource::Dir(dir));
}

#[test]
fn builtin_unknown_language_is_a_clear_error() {
    let err = PromptClips::builtin("xx").unwrap_err();
    assert!(matches!(err, PromptError::NoBuiltIn { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("\"xx\""), "{message}");
    assert!(message.contains("en"), "{message}");
    assert!(message.contains("VOICE_PROMPTS_DIR"), "{message}");
}

#[test]
fn from_dir_loads_good_recordings() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 4000);
    let clips = PromptClips::from_dir(tmp.path(), "en").unwrap();
    assert_eq!(clips.source(), &PromptSource::Dir(tmp.path().to_path_buf()));
    assert_eq!(clips.iter().count(), 13);
    for (name, samples) in clips.iter() {
        assert_eq!(samples.len(), 4000, "{name}");
    }
    assert_eq!(clips.get("7").unwrap()[1], -9900);
}

#[test]
fn from_dir_missing_clip_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    std::fs::remove_file(tmp.path().join("repeating.wav")).unwrap();
    assert_eq!(single_problem(tmp.path(), "repeating"), "missing");
}

#[test]
fn from_dir_rejects_16khz() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    write_wav(&tmp.path().join("intro.wav"), spec(16_000, 1, 16), 800);
    let problem = single_problem(tmp.path(), "intro");
    assert!(problem.contains("16000 Hz"), "{problem}");
}

#[test]
fn from_dir_rejects_stereo() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    write_wav(&tmp.path().join("3.wav"), spec(RATE, 2, 16), 800);
    let problem = single_problem(tmp.path(), "3");
    assert!(problem.contains("2 channels"), "{problem}");
}

#[test]
fn from_dir_rejects_8bit() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    write_wav(&tmp.path().join("goodbye.wav"), spec(RATE, 1, 8), 800);
    let problem = single_problem(tmp.path(), "goodbye");
    assert!(problem.contains("8-bit"), "{problem}");
}

#[test]
fn from_dir_rejects_float() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    let float = hound::WavSpec {
        sample_format: hound::SampleFormat::Float,
        ..spec(RATE, 1, 32)
    };
    write_wav(&tmp.path().join("0.wav"), float, 800);
    let problem = single_problem(tmp.path(), "0");
    assert!(problem.contains("floating-point"), "{problem}");
}

#[test]
fn from_dir_rejects_a_file_that_is_not_wav() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    std::fs::write(
        tmp.path().join("5.wav"),
        b"ID3\x03\x00 this is an mp3, honest",
    )
    .unwrap();
    let problem = single_problem(tmp.path(), "5");
    assert!(problem.contains("not a WAV file"), "{problem}");
}

#[test]
fn from_dir_rejects_an_empty_clip() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    write_wav(&tmp.path().join("9.wav"), spec(RATE, 1, 16), 0);
    let problem = single_problem(tmp.path(), "9");
    assert!(problem.contains("no audio"), "{problem}");
}

#[test]
fn from_dir_reports_every_problem_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    std::fs::remove_file(tmp.path().join("intro.wav")).unwrap();
    write_wav(&tmp.path().join("1.wav"), spec(16_000, 2, 8), 800);
    std::fs::write(tmp.path().join("goodbye.wav"), "text").unwrap();
    let err = PromptClips::from_dir(tmp.path(), "en").unwrap_err();
    let (dir, problems, message) = invalid_clips(err);
    assert_eq!(dir, tmp.path());
    let names: Vec<_> = problems.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        names,
        ["intro", "1", "goodbye"].map(|n| tmp.path().join(format!("{n}.wav")))
    );
    // One file with several faults gets all of them.
    let one = &problems[1].1;
    assert!(
        one.contains("16000 Hz") && one.contains("2 channels") && one.contains("8-bit"),
        "{one}"
    );
    assert!(
        message.starts_with("3 of the 13 voice prompt clips"),
        "{message}"
    );
    for (path, _) in &problems {
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}

#[test]
fn from_dir_prefers_the_language_subfolder() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    good_clips(&tmp.path().join("de"), 1600);

    let de = PromptClips::from_dir(tmp.path(), "de").unwrap();
    assert_eq!(de.source(), &PromptSource::Dir(tmp.path().join("de")));
    assert!(de.iter().all(|(_, s)| s.len() == 1600));

    // No `fr/` subfolder: the root clips.
    let fr = PromptClips::from_dir(tmp.path(), "fr").unwrap();
    assert_eq!(fr.language(), "fr");
    assert_eq!(fr.source(), &PromptSource::Dir(tmp.path().to_path_buf()));
    assert!(fr.iter().all(|(_, s)| s.len() == 800));
}

#[test]
fn from_dir_with_an_incomplete_language_subfolder_does_not_fall_back() {
    // A subfolder that exists is the language's clips: a gap there is an error, not a silent
    // mix of two voices.
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    good_clips(&tmp.path().join("de"), 1600);
    std::fs::remove_file(tmp.path().join("de/4.wav")).unwrap();
    let problem = single_problem(&tmp.path().join("de"), "4");
    assert_eq!(problem, "missing");
    let (dir, problems, _) = invalid_clips(PromptClips::from_dir(tmp.path(), "de").unwrap_err());
    assert_eq!(dir, tmp.path().join("de"));
    assert_eq!(problems.len(), 1);
}

#[test]
fn from_dir_rejects_a_language_that_is_not_a_folder_name() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(tmp.path(), 800);
    let err = PromptClips::from_dir(tmp.path(), "../en").unwrap_err();
    assert!(matches!(err, PromptError::InvalidLanguage(_)), "{err:?}");
}

#[test]
fn load_follows_the_voice_config() {
    let tmp = tempfile::tempdir().unwrap();
    good_clips(&tmp.path().join("en"), 1200);
    let mut voice = VoiceConfig {
        message_template: "intro {code} repeating {code} goodbye".to_string(),
        prompt: vec![PromptPart::Intro, PromptPart::Code, PromptPart::Goodbye],
        speed: VoiceSpeed::Medium,
        language: "en".to_string(),
        prompts_dir: None,
    };
    assert_eq!(
        PromptClips::load(&voice).unwrap().source(),
        &PromptSource::BuiltIn
    );
    voice.prompts_dir = Some(tmp.path().to_path_buf());
    let clips = PromptClips::load(&voice).unwrap();
    assert_eq!(clips.source(), &PromptSource::Dir(tmp.path().join("en")));
    assert_eq!(clips.get("intro").unwrap().len(), 1200);
}
