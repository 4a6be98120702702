#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The model's `config.json` (Meta's `{"args": …}` layout, with its calibrated threshold).
pub const CONFIG_JSON: &str = include_str!("../model/config.json");

/// The model's `model.safetensors` (BF16, Meta's tensor names).
pub const WEIGHTS: &[u8] = include_bytes!("../model/model.safetensors");

/// The name the model goes by in outputs' provenance.
pub const MODEL_ID: &str = "blt-default";

/// SHA-256 (hex) of [`WEIGHTS`].
pub fn weights_sha256() -> String {
    Sha256::digest(WEIGHTS)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cache directory the model is written to: `$BLT_CACHE_DIR`, else `$XDG_CACHE_HOME/blt`,
/// else `~/.cache/blt`, else the system's temporary directory.
pub fn cache_root() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("BLT_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("blt")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("blt")))
        .unwrap_or_else(|| std::env::temp_dir().join("blt"))
}

/// SHA-256 (hex) of the config followed by the weights: what names the cached copy, so that a
/// recalibrated config never reuses a stale copy.
fn content_sha256() -> String {
    let mut h = Sha256::new();
    h.update(CONFIG_JSON.as_bytes());
    h.update(WEIGHTS);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the model as a checkpoint directory under `root` (`models/blt-default-<hash>/`) unless
/// it is already there, and returns the directory. The directory is written under a temporary
/// name and renamed, so a reader never sees half a model.
pub fn materialize(root: &Path) -> io::Result<PathBuf> {
    let hash = content_sha256();
    let dir = root
        .join("models")
        .join(format!("{MODEL_ID}-{}", &hash[..16]));
    let weights = dir.join("model.safetensors");
    if weights.is_file() && std::fs::metadata(&weights)?.len() == WEIGHTS.len() as u64 {
        return Ok(dir);
    }
    let parent = dir.parent().unwrap_or(root);
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".{MODEL_ID}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    std::fs::write(tmp.join("config.json"), CONFIG_JSON)?;
    std::fs::write(tmp.join("model.safetensors"), WEIGHTS)?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process got there first.
        Err(_) if weights.is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materializes_once_and_completely() {
        let tmp = std::env::temp_dir().join(format!("blt-default-test-{}", std::process::id()));
        let dir = materialize(&tmp).unwrap();
        assert_eq!(
            std::fs::read(dir.join("model.safetensors")).unwrap(),
            WEIGHTS
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("config.json")).unwrap(),
            CONFIG_JSON
        );
        assert_eq!(materialize(&tmp).unwrap(), dir);
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
