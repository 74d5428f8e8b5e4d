//! The manifest parser on arbitrary input: it must return objects or errors, never panic, and
//! stay linear in the input (libFuzzer's timeout and RSS limit catch a blow-up).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = dockhand::manifest::parse_str(&text, "fuzz.yaml", None);
    let _ = dockhand::source::applied::parse(&text, "api:server/fuzz", None);
});
