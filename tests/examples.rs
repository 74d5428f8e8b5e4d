//! The bundled manifests and examples always parse (no engine needed).

use std::path::Path;

use dockhand::source::directory;

#[test]
fn bundled_manifests_and_examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["manifests", "examples"] {
        let snap = directory::load(&root.join(dir));
        assert!(snap.errors.is_empty(), "{dir}: {:?}", snap.errors);
        assert!(!snap.objects.is_empty(), "{dir} defines no objects");
    }
}
