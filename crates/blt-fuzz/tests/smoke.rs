//! The CI smoke run of the fuzz targets, one test per target: every seed under
//! `seeds/<target>/` must be accepted, every input under `seeds/<target>/regressions/` must
//! return (accepted or refused), and so must a few hundred deterministic mutations of each
//! seed. All inputs run; a test that fails lists each place a panic was raised, with its
//! message and the first input that raised it (written to the temporary folder).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Instant;

use blt_fuzz::Outcome;

/// xorshift64*: a small deterministic generator for the mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Values that often sit at the edge of a length or count check.
const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

/// One to four random edits of `data`: bit flips, byte and integer overwrites, insertions,
/// deletions, duplicated chunks, truncation.
fn mutate(data: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = (1 + rng.below(16)).min(len - at);
                data.drain(at..at + n);
            }
            4 if len > 0 => data.truncate(rng.below(len)),
            5 if len > 0 => {
                let from = rng.below(len);
                let n = (1 + rng.below(64)).min(len - from);
                let chunk = data[from..from + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            6 if len >= 8 => {
                let at = rng.below(len - 7);
                let width = [1, 2, 4, 8][rng.below(4)];
                let value = INTERESTING[rng.below(INTERESTING.len())];
                data[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            _ if len > 0 => {
                // An interesting byte.
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())] as u8;
            }
            _ => data.push(rng.next() as u8),
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

thread_local! {
    /// Set while a target runs on this thread: its panics are recorded, not printed.
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
    /// Where the last recorded panic was raised.
    static PANIC_AT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs (once) a panic hook that records the location of a target's panic instead of
/// printing it, and leaves every other panic to the default hook.
fn quiet_target_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_TARGET.with(Cell::get) {
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                default(info);
            }
        }));
    });
}

/// A panic of a target: where it was raised, its message, the input (saved in the temporary
/// folder) and how many inputs raised it.
struct Finding {
    at: String,
    message: String,
    saved: PathBuf,
    what: String,
    count: usize,
}

/// The panics of one smoke run, one per location.
#[derive(Default)]
struct Findings(BTreeMap<String, Finding>);

impl Findings {
    /// Runs `target` on `data`; a panic is recorded (with the input saved), not raised.
    fn run(
        &mut self,
        name: &str,
        target: fn(&[u8]) -> Outcome,
        data: &[u8],
        what: &str,
    ) -> Option<Outcome> {
        IN_TARGET.with(|f| f.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| target(data)));
        IN_TARGET.with(|f| f.set(false));
        let panic = match result {
            Ok(outcome) => return Some(outcome),
            Err(panic) => panic,
        };
        let at = PANIC_AT.with(|p| p.borrow().clone());
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let finding = self.0.entry(at.clone()).or_insert_with(|| {
            let saved = std::env::temp_dir().join(format!(
                "blt-fuzz-{name}-{}.bin",
                what.replace(['/', ' ', '#'], "_")
            ));
            std::fs::write(&saved, data).unwrap();
            Finding {
                at,
                message,
                saved,
                what: what.to_string(),
                count: 0,
            }
        });
        finding.count += 1;
        None
    }
}

/// The smoke run of one target. With `keep_selector`, mutations leave the first byte (the
/// format selector) alone, so that they exercise the format the seed is in.
fn smoke(target_name: &str, target: fn(&[u8]) -> Outcome, keep_selector: bool, mutations: usize) {
    quiet_target_panics();
    let started = Instant::now();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target_name);
    let seeds = files(&dir);
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    let mut findings = Findings::default();
    let regressions = files(&dir.join("regressions"));
    for path in &regressions {
        let data = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        findings.run(target_name, target, &data, &format!("regression {name}"));
    }
    let (mut accepted, mut refused) = (0usize, 0usize);
    for (s, path) in seeds.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let seed = std::fs::read(path).unwrap();
        if let Some(outcome) = findings.run(target_name, target, &seed, &name) {
            assert!(
                matches!(outcome, Ok(n) if n > 0),
                "seed {name} is not accepted: {outcome:?}"
            );
        }
        let mut rng = Rng::new(s as u64 + 1);
        for m in 0..mutations {
            let (head, body) = if keep_selector && !seed.is_empty() {
                seed.split_at(1)
            } else {
                seed.split_at(0)
            };
            let mut body = body.to_vec();
            mutate(&mut body, &mut rng);
            let data = [head, &body].concat();
            match findings.run(target_name, target, &data, &format!("{name} mutation {m}")) {
                Some(Ok(_)) => accepted += 1,
                Some(Err(_)) => refused += 1,
                None => {}
            }
        }
    }
    let panicked: usize = findings.0.values().map(|f| f.count).sum();
    eprintln!(
        "{target_name}: {} seeds, {} regressions, {} mutations ({accepted} accepted, {refused} \
         refused, {panicked} panicked) in {:.1?}",
        seeds.len(),
        regressions.len(),
        seeds.len() * mutations,
        started.elapsed()
    );
    let report: Vec<String> = findings
        .0
        .values()
        .map(|f| {
            format!(
                "- {} input(s) panicked at {}: {}\n  first: {} (saved as {})",
                f.count,
                f.at,
                f.message.chars().take(300).collect::<String>(),
                f.what,
                f.saved.display()
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "{target_name} panicked at {} location(s):\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn tables() {
    smoke("tables", blt_fuzz::tables, true, 1500);
}

#[test]
fn checkpoint_safetensors() {
    smoke(
        "checkpoint_safetensors",
        blt_fuzz::checkpoint_safetensors,
        false,
        5000,
    );
}

#[test]
fn checkpoint_pth() {
    smoke("checkpoint_pth", blt_fuzz::checkpoint_pth, false, 5000);
}

#[test]
fn readback() {
    smoke("readback", blt_fuzz::readback, true, 4000);
}

#[cfg(feature = "video")]
#[test]
fn video() {
    smoke("video", blt_fuzz::video, false, 400);
}

#[test]
fn pretokenize() {
    smoke("pretokenize", blt_fuzz::pretokenize, true, 3000);
}

/// The mutator is deterministic and changes its input.
#[test]
fn mutations_are_deterministic() {
    let seed = b"some seed bytes to mutate".to_vec();
    let run = || {
        let mut rng = Rng::new(7);
        (0..50)
            .map(|_| {
                let mut d = seed.clone();
                mutate(&mut d, &mut rng);
                d
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert!(a.iter().filter(|d| **d != seed).count() >= 45);
}
