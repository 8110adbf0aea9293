//! The source-definition parser, JSON (API bodies) or TOML (files) by option bit 0.
//! Properties: an accepted definition reads back equal from its own JSON form (how stored
//! definitions are loaded) and from its TOML form when it has one, and untrusted validation never panics.
#![no_main]

use gleaner::harvest::SourceDef;
use gleaner_fuzz::split;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((opt, text)) = split(data) else {
        return;
    };
    let parsed = if opt & 1 == 0 {
        SourceDef::parse_json(text)
    } else {
        match std::str::from_utf8(text) {
            Ok(t) => SourceDef::parse_toml(t),
            Err(_) => return,
        }
    };
    let Ok(def) = parsed else {
        return;
    };
    let _ = def.validate_untrusted();
    let json = serde_json::to_vec(&def.to_value()).expect("a definition serializes to JSON");
    match SourceDef::parse_json(&json) {
        Ok(back) => assert_eq!(
            back,
            def,
            "JSON round trip of {}",
            String::from_utf8_lossy(&json)
        ),
        Err(e) => panic!(
            "accepted definition does not read back from JSON: {e}\n{}",
            String::from_utf8_lossy(&json)
        ),
    }
    // Gleaner never writes definitions as TOML, so only one that serializes (TOML has
    // no integers above i64::MAX, for one) must read back.
    if let Ok(toml) = toml::to_string(&def) {
        match SourceDef::parse_toml(&toml) {
            Ok(back) => assert_eq!(back, def, "TOML round trip of\n{toml}"),
            Err(e) => panic!("definition written as TOML does not read back: {e}\n{toml}"),
        }
    }
});
