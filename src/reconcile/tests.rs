use super::*;
use crate::engine::fake::FakeEngine;
use crate::source::directory;

#[tokio::test]
async fn a_pass_converges_and_the_next_one_does_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = dir.path().join("m");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    for name in ["a", "b"] {
        let text = format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec: {{image: x}}\n");
        std::fs::write(manifests.join(format!("{name}.yaml")), text).expect("write");
    }
    let store = Store::open(&dir.path().join("s.db")).await.expect("store");
    let options = Options {
        instance: "t".into(),
        allow_empty: false,
        parallel: 4,
        backoff: BackoffPolicy::default(),
        host_policy: Default::default(),
        manifests: Some(manifests.clone()),
        prune_delay: std::time::Duration::ZERO,
        take_over: false,
        subnet_pool: None,
    };
    let rec = Reconciler::new(FakeEngine::new(), store.clone(), options);
    let snapshot = directory::load(&manifests);

    let first = rec.pass(&snapshot).await.expect("pass");
    assert_eq!(first.outcomes.len(), 2);
    assert!(first.failures().next().is_none());
    let second = rec.pass(&snapshot).await.expect("pass");
    assert!(
        second.converged() && second.settled(),
        "{:?}",
        second.plan.actions
    );
    assert!(second.statuses.iter().all(|s| s.phase == Phase::Ready));
    let events = store.events("t", None, None, 100).await.expect("events");
    let third = rec.pass(&snapshot).await.expect("pass");
    assert!(third.outcomes.is_empty());
    assert_eq!(
        store.events("t", None, None, 100).await.expect("events"),
        events,
        "a no-op pass wrote events"
    );
}
