//! The `serde` feature: configurations, modes and boundaries in their JSON forms.
#![cfg(feature = "serde")]

use blt_patcher::{PatchBoundaries, PatcherConfig, PatchingMode};

#[test]
fn config_round_trips_and_defaults_missing_fields() {
    let config = PatcherConfig::new(PatchingMode::BpePredicted)
        .with_max_patch_length(Some(3))
        .with_include_next_token(true);
    let json = serde_json::to_string(&config).unwrap();
    assert!(json.contains("\"mode\":\"bpe_patcher\""), "{json}");
    assert_eq!(
        serde_json::from_str::<PatcherConfig>(&json).unwrap(),
        config
    );

    let partial: PatcherConfig = serde_json::from_str(r#"{"mode": "space"}"#).unwrap();
    assert_eq!(partial, PatcherConfig::new(PatchingMode::Space));
    let top_k: PatcherConfig = serde_json::from_str(r#"{"threshold": null}"#).unwrap();
    assert_eq!(top_k.threshold, None);
}

#[test]
fn modes_use_the_reference_names() {
    for mode in PatchingMode::ALL {
        let json = serde_json::to_string(&mode).unwrap();
        assert_eq!(json, format!("\"{}\"", mode.as_str()));
        assert_eq!(serde_json::from_str::<PatchingMode>(&json).unwrap(), mode);
    }
}

#[test]
fn boundaries_are_their_lengths() {
    let b = PatchBoundaries::from_lengths(vec![1, 1, 3, 3, 2]).unwrap();
    assert_eq!(serde_json::to_string(&b).unwrap(), "[1,1,3,3,2]");
    let back: PatchBoundaries = serde_json::from_str("[1,1,3,3,2]").unwrap();
    assert_eq!(back, b);
    assert_eq!(back.starts(), &[0, 1, 2, 5, 8]);
    assert!(serde_json::from_str::<PatchBoundaries>("[1,0]").is_err());
}
