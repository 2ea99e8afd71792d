//! Property-based fuzzing of the parsers that face untrusted input: the config loader, the
//! manifest parser, and restore's input sniffing and decoding. They must never panic. CI runs a
//! short campaign; `PROPTEST_CASES=100000 cargo test --release --test fuzz` runs a long one.

use std::io::Read;

use pgtier::config::Config;
use pgtier::crypto::Keys;
use pgtier::records::manifest::Manifest;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// YAML-ish text: keys, values, nesting, anchors, tags and junk.
fn yamlish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("projects".to_string()),
        Just("backup_root".to_string()),
        Just("remote".to_string()),
        Just("url: s3://b/p".to_string()),
        Just("encryption: {type: age}".to_string()),
        Just("tiers:".to_string()),
        Just("daily: {keep: 3}".to_string()),
        Just("&a".to_string()),
        Just("*a".to_string()),
        Just("!!binary".to_string()),
        Just("[".to_string()),
        Just("{".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("\n  ".to_string()),
        Just("\n".to_string()),
        "[a-z_]{1,8}",
        "[0-9]{1,12}",
        ".{0,12}",
    ];
    prop::collection::vec(atom, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_config_loader_never_panics(agent in yamlish(), projects in yamlish(), policy in yamlish()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("pgtier.yml"), &agent).unwrap();
        std::fs::write(dir.path().join("projects.yml"), &projects).unwrap();
        std::fs::write(dir.path().join("policies/p.yml"), &policy).unwrap();
        let (cfg, problems) = Config::check(&dir.path().join("pgtier.yml"));
        // Either a config or problems, and every problem is a configuration error (exit 2).
        prop_assert!(cfg.is_some() || !problems.is_empty());
        for p in problems {
            prop_assert_eq!(p.exit_code(), 2, "{}", p);
        }
    }

    #[test]
    fn the_manifest_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Manifest::from_bytes(&bytes, std::path::Path::new("fuzz.json"), None);
    }

    #[test]
    fn mutated_manifests_never_panic(pos in 0usize..900, byte in any::<u8>(), cut in 0usize..1000) {
        let mut good = br#"{"format_version":1,"kind":"database","project":"p","env":"e","database":"d","created_at":"2025-01-01T02:00:00Z","file":"db_20250101_020000.dump.gz","format":"custom","compression":"gzip","size":10,"sha256":"0000000000000000000000000000000000000000000000000000000000000000","tables":{"public.t":3},"tags":[],"tiers":["daily"]}"#.to_vec();
        if pos < good.len() {
            good[pos] = byte;
        }
        good.truncate(cut.max(1));
        let _ = Manifest::from_bytes(&good, std::path::Path::new("fuzz.json"), None);
    }

    #[test]
    fn restore_input_sniffing_and_decoding_never_panic(prefix in prop::sample::select(vec![
        vec![], vec![0x1f, 0x8b], vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], vec![0x28, 0xb5, 0x2f, 0xfd],
        b"age-encryption.org/v1\n".to_vec(), b"-----BEGIN AGE ENCRYPTED FILE-----\n".to_vec(),
        b"-----BEGIN PGP MESSAGE-----\n\n".to_vec(), vec![0x8c, 0x0d, 0x04, 0x09, 0x03, 0x08], vec![0xc3, 0x0d], vec![0x85, 0x01],
        b"PGDMP".to_vec(), b"--\n-- PostgreSQL".to_vec(),
    ]), tail in prop::collection::vec(any::<u8>(), 0..4000)) {
        let mut input = prefix;
        input.extend(tail);
        let keys = Keys::none();
        if let Ok((mut r, _)) = pgtier::pipeline::decoder(Box::new(std::io::Cursor::new(input)), &keys, "fuzz") {
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        }
    }
}
