//! Compose files on arbitrary input: a project folder of a compose file, a second compose file
//! it may `extends`, and a `.env` (the input's three parts, split at NUL bytes), read as a
//! controller reads them (confined to the folder, no variable of its own). Loading must return
//! a project or errors, never panic or overflow the stack, and stay linear in the input
//! (libFuzzer's timeout and RSS limit catch a blow-up): interpolation, `extends` and YAML
//! anchors included.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let (main, base, env) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let _ = dockhand::compose::interpolate::interpolate(main, &|k| (k == "SET").then(|| "v".into()));
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let write = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).is_ok();
    if !(write("compose.yaml", main) && write("base.yaml", base) && write(".env", env)) {
        return;
    }
    let options = dockhand::compose::Options {
        allowed_env: Some(Vec::new()),
        confine: Some(vec![dir.path().to_path_buf()]),
        ..Default::default()
    };
    let _ = dockhand::compose::load(&dir.path().join("compose.yaml"), "compose.yaml", &options);
});
