//! The patching mode and the patcher's configuration (the reference's `PatcherArgs`).

use std::fmt;
use std::str::FromStr;

use crate::{Error, Patcher, Result, DEFAULT_THRESHOLD};

/// How patch boundaries are found. The names follow the reference's `patching_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum PatchingMode {
    /// Entropy rules (`entropy`): the global threshold rule, the monotonic rule
    /// ([`PatcherConfig::monotonic`]), global + monotonic ([`PatcherConfig::threshold_add`]), or
    /// top-k when [`PatcherConfig::threshold`] is `None`.
    #[default]
    Entropy,
    /// `space`: a patch ends after the first of a run of non-alphanumeric bytes (UTF-8 lead
    /// bytes count as non-alphanumeric, continuation bytes do not) and after every special id.
    Space,
    /// `static` (the reference's `patching_mode=None`): patches of `patch_size` bytes, the last
    /// one shorter.
    Static,
    /// `byte`: every token is its own patch.
    Byte,
    /// `bpe`: the BPE delimiter id (3) ends a patch.
    Bpe,
    /// Model-predicted delimiters (the reference's `bpe_patcher`): a patch starts after every
    /// position whose predicted id (argmax) is the BPE delimiter 3. The caller supplies the
    /// predictions through [`Patcher::patch_predicted`].
    #[cfg_attr(feature = "serde", serde(rename = "bpe_patcher"))]
    BpePredicted,
}

impl PatchingMode {
    /// Every mode, in declaration order.
    pub const ALL: [PatchingMode; 6] = [
        PatchingMode::Entropy,
        PatchingMode::Space,
        PatchingMode::Static,
        PatchingMode::Byte,
        PatchingMode::Bpe,
        PatchingMode::BpePredicted,
    ];

    /// The reference's name of the mode (`"entropy"`, `"space"`, `"static"`, `"byte"`, `"bpe"`,
    /// `"bpe_patcher"`).
    pub fn as_str(self) -> &'static str {
        match self {
            PatchingMode::Entropy => "entropy",
            PatchingMode::Space => "space",
            PatchingMode::Static => "static",
            PatchingMode::Byte => "byte",
            PatchingMode::Bpe => "bpe",
            PatchingMode::BpePredicted => "bpe_patcher",
        }
    }
}

impl fmt::Display for PatchingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PatchingMode {
    type Err = Error;

    /// Parses the reference's names; `bpe_predicted` is accepted as an alias of `bpe_patcher`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "entropy" => Ok(PatchingMode::Entropy),
            "space" => Ok(PatchingMode::Space),
            "static" => Ok(PatchingMode::Static),
            "byte" => Ok(PatchingMode::Byte),
            "bpe" => Ok(PatchingMode::Bpe),
            "bpe_patcher" | "bpe_predicted" => Ok(PatchingMode::BpePredicted),
            other => Err(Error::UnknownMode(other.to_owned())),
        }
    }
}

/// What the patcher does: the reference's `PatcherArgs`, without the entropy-model fields.
///
/// [`Default`] gives the reference defaults: entropy mode, global rule with
/// θ = [`DEFAULT_THRESHOLD`], no `threshold_add`, not monotonic, no `max_patch_length`,
/// `patch_size` 4.5, and `include_next_token = false` (the preprocessing convention; generation
/// and the BLT forward use `true`).
///
/// Which entropy rule applies follows the reference's precedence: `threshold: None` → top-k;
/// else `monotonic` → monotonic; else `threshold_add: Some` → global + monotonic; else global.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct PatcherConfig {
    /// How boundaries are found.
    pub mode: PatchingMode,
    /// Entropy threshold θ in nats, compared in f32 with a strict `>`. `None` selects top-k
    /// patching. With `monotonic` it is a threshold on the *difference* of consecutive entropies.
    pub threshold: Option<f32>,
    /// Minimum entropy increase for the global + monotonic rule (used when `threshold` is set and
    /// `monotonic` is false).
    pub threshold_add: Option<f32>,
    /// Use the monotonic (relative) rule `H[t−1] − H[t−2] > θ`.
    pub monotonic: bool,
    /// Split every longer patch into chunks of this length followed by the remainder.
    pub max_patch_length: Option<usize>,
    /// Target patch size. Static patching and top-k entropy patching need a whole number; other
    /// modes ignore it.
    pub patch_size: f32,
    /// Cover one extra, not yet seen position after the sequence (lengths sum to `S + 1`), as
    /// generation and the BLT forward do. `false` (lengths sum to `S`) is the preprocessing
    /// convention.
    pub include_next_token: bool,
}

impl Default for PatcherConfig {
    fn default() -> Self {
        PatcherConfig {
            mode: PatchingMode::Entropy,
            threshold: Some(DEFAULT_THRESHOLD),
            threshold_add: None,
            monotonic: false,
            max_patch_length: None,
            patch_size: 4.5,
            include_next_token: false,
        }
    }
}

impl PatcherConfig {
    /// The reference defaults with another mode.
    pub fn new(mode: PatchingMode) -> Self {
        PatcherConfig {
            mode,
            ..PatcherConfig::default()
        }
    }

    /// Sets [`mode`](Self::mode).
    pub fn with_mode(mut self, mode: PatchingMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets [`threshold`](Self::threshold); `None` selects top-k.
    pub fn with_threshold(mut self, threshold: Option<f32>) -> Self {
        self.threshold = threshold;
        self
    }

    /// Sets [`threshold_add`](Self::threshold_add).
    pub fn with_threshold_add(mut self, threshold_add: Option<f32>) -> Self {
        self.threshold_add = threshold_add;
        self
    }

    /// Sets [`monotonic`](Self::monotonic).
    pub fn with_monotonic(mut self, monotonic: bool) -> Self {
        self.monotonic = monotonic;
        self
    }

    /// Sets [`max_patch_length`](Self::max_patch_length).
    pub fn with_max_patch_length(mut self, max_patch_length: Option<usize>) -> Self {
        self.max_patch_length = max_patch_length;
        self
    }

    /// Sets [`patch_size`](Self::patch_size).
    pub fn with_patch_size(mut self, patch_size: f32) -> Self {
        self.patch_size = patch_size;
        self
    }

    /// Sets [`include_next_token`](Self::include_next_token).
    pub fn with_include_next_token(mut self, include_next_token: bool) -> Self {
        self.include_next_token = include_next_token;
        self
    }

    /// Validates the configuration and builds a [`Patcher`]; same as [`Patcher::new`].
    pub fn build(self) -> Result<Patcher> {
        Patcher::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_patcher_args() {
        let c = PatcherConfig::default();
        assert_eq!(c.mode, PatchingMode::Entropy);
        assert_eq!(c.threshold.map(f32::to_bits), Some(0x3FAA_EFC4));
        assert_eq!(c.threshold_add, None);
        assert!(!c.monotonic);
        assert_eq!(c.max_patch_length, None);
        assert_eq!(c.patch_size, 4.5);
        assert!(!c.include_next_token);
    }

    #[test]
    fn builder_sets_every_field() {
        let c = PatcherConfig::new(PatchingMode::Space)
            .with_mode(PatchingMode::Entropy)
            .with_threshold(None)
            .with_threshold_add(Some(0.5))
            .with_monotonic(true)
            .with_max_patch_length(Some(3))
            .with_patch_size(4.0)
            .with_include_next_token(true);
        assert_eq!(
            c,
            PatcherConfig {
                mode: PatchingMode::Entropy,
                threshold: None,
                threshold_add: Some(0.5),
                monotonic: true,
                max_patch_length: Some(3),
                patch_size: 4.0,
                include_next_token: true,
            }
        );
    }

    #[test]
    fn mode_names_round_trip() {
        for mode in PatchingMode::ALL {
            assert_eq!(mode.as_str().parse::<PatchingMode>(), Ok(mode));
            assert_eq!(mode.to_string(), mode.as_str());
        }
        assert_eq!("bpe_predicted".parse(), Ok(PatchingMode::BpePredicted));
        assert_eq!(
            "entropie".parse::<PatchingMode>(),
            Err(Error::UnknownMode("entropie".into()))
        );
    }
}
