//! Config TOML text → `Config` (as `Config::load` reads a file, without
//! `BTCTS_*` variables) → `Config::validate` into typed settings.
#![no_main]

use btcts_api::config::Config;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return;
    };
    let Ok(config) = Config::deserialize(toml::Value::Table(table)) else {
        return;
    };
    let _ = config.validate();
});
