//! The stages of an ingest run, and the one boundary where a panic in any of them becomes a
//! typed error.
//!
//! Third-party decoders and readers can panic on hostile input (arrow-ipc on a footer block with
//! a negative body length, a media decoder on a corrupt frame). A panic is caught where a stage
//! works on one document and becomes that document's failure; a panic that leaves a stage unable
//! to go on (its input iterator, a shard writer holding other documents) becomes
//! [`Error::Panicked`] and fails the run. It is never a silent end of input.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;

use crate::{Error, Result};

/// A stage of an ingest run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Enumerating the input and reading a document's bytes.
    Read,
    /// Detecting the format and splitting the document into segments.
    Pretokenize,
    /// Tokenizing and running the entropy model.
    Model,
    /// Patching, pooling embeddings and assembling the results.
    Postprocess,
    /// Writing outputs and sidecars.
    Write,
}

impl Stage {
    /// The stage's name in failures and `run.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Pretokenize => "pretokenize",
            Self::Model => "model",
            Self::Postprocess => "postprocess",
            Self::Write => "write",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The message of a panic payload (`panic!` with a literal or a formatted string).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f` for `stage`; a panic becomes [`Error::Panicked`].
///
/// The closure's state is asserted unwind-safe: callers only use it for work whose partial state
/// is dropped (one document's buffers) or whose owner stops after the error.
pub(crate) fn guarded<T>(stage: Stage, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(Error::Panicked {
            stage,
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// Joins a stage's thread; a panic that escaped the stage becomes [`Error::Panicked`].
pub(crate) fn join<T>(stage: Stage, handle: std::thread::ScopedJoinHandle<'_, T>) -> Result<T> {
    handle.join().map_err(|payload| Error::Panicked {
        stage,
        message: panic_message(payload.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_an_error_naming_the_stage_and_the_message() {
        let err = guarded::<()>(Stage::Postprocess, || panic!("bad {}", 7)).unwrap_err();
        match err {
            Error::Panicked { stage, message } => {
                assert_eq!(stage, Stage::Postprocess);
                assert_eq!(message, "bad 7");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = guarded::<()>(Stage::Read, || panic!("literal")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pipeline: the read stage panicked: literal"
        );
        assert_eq!(guarded(Stage::Write, || Ok(3)).unwrap(), 3);
    }

    #[test]
    fn a_panicking_thread_joins_as_an_error() {
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| -> u32 { panic!("thread down") });
            match join(Stage::Model, handle) {
                Err(Error::Panicked { stage, message }) => {
                    assert_eq!(stage, Stage::Model);
                    assert_eq!(message, "thread down");
                }
                other => panic!("unexpected {other:?}"),
            }
        });
    }
}
