//! Real media files for the image/audio/video tests, none written by the project: copied from
//! Debian packages installed by `scripts/setup/21-media-test-data.sh`, or transcoded from them at
//! test time with Debian's `ffmpeg` CLI (which also serves as an independent reference decoder).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// A 512×512 RGBA PNG icon from `adwaita-icon-theme` (CC-BY-SA 3.0 / LGPL-3).
pub const ICON_PNG: &str = "/usr/share/icons/Adwaita/512x512/places/folder-pictures.png";
/// A spoken "front center" from `alsa-utils` (GPL-2+), 16-bit PCM WAV.
pub const SPEECH_WAV: &str = "/usr/share/sounds/alsa/Front_Center.wav";
/// A chime from `sound-theme-freedesktop` (GPL-2+ / CC-BY-SA), OGG/Vorbis.
pub const CHIME_OGA: &str = "/usr/share/sounds/freedesktop/stereo/complete.oga";

const SETUP: &str = "scripts/setup/21-media-test-data.sh";

/// The bytes of a file a Debian package ships; fails with the script to run when it is missing.
pub fn system_file(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e}. Run {SETUP} (cargo xtask test runs it) to install the test media.")
    })
}

/// Runs `ffmpeg -y -loglevel error ARGS`, failing the test with its stderr.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-loglevel", "error"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}. Run {SETUP} to install it."));
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `source` transcoded by ffmpeg into `dir/name` with extra output arguments; returns its bytes.
pub fn transcode(dir: &Path, source: &str, name: &str, output_args: &[&str]) -> Vec<u8> {
    let out: PathBuf = dir.join(name);
    let out_str = out.to_str().expect("temp paths are UTF-8");
    let mut args = vec!["-i", source];
    args.extend_from_slice(output_args);
    args.push(out_str);
    ffmpeg(&args);
    std::fs::read(&out).expect("ffmpeg wrote its output")
}

/// ffmpeg's own decoding of `source` to raw bytes (`-f FORMAT` plus `args`), as a reference.
pub fn ffmpeg_decode(dir: &Path, source: &str, args: &[&str]) -> Vec<u8> {
    transcode(dir, source, "reference.raw", args)
}

/// Damaged versions of `good`: cut in half, cut to a few bytes, header overwritten with garbage,
/// every 7th byte flipped, and pure garbage of the same length.
pub fn damaged_versions(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let half = good[..good.len() / 2].to_vec();
    let stub = good[..good.len().min(12)].to_vec();
    let mut header = good.to_vec();
    for (i, b) in header.iter_mut().take(64).enumerate() {
        *b = 0xA5 ^ (i as u8);
    }
    let mut flipped = good.to_vec();
    for b in flipped.iter_mut().skip(64).step_by(7) {
        *b ^= 0x5A;
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let garbage: Vec<u8> = (0..good.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    vec![
        ("cut in half", half),
        ("first 12 bytes", stub),
        ("garbage header", header),
        ("flipped bytes", flipped),
        ("random garbage", garbage),
        ("empty", Vec::new()),
    ]
}

/// Runs `f` on another thread and fails if it takes longer than `secs` (an endless loop) or
/// panics.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}
