//! The reconcile pass end to end without Docker: real manifests directory, real state file, the
//! in-memory engine. Proves the pass's promises (converge, stay put, prune only what is ours and
//! only when safe) in milliseconds; the engine tests prove the same against Docker.

use std::collections::HashMap;
use std::path::PathBuf;

use dockhand::engine::fake::FakeEngine;
use dockhand::engine::labels;
use dockhand::engine::State;
use dockhand::lifecycle::BackoffPolicy;
use dockhand::plan::Action;
use dockhand::reconcile::{Options, PassReport, Reconciler};
use dockhand::source::directory;
use dockhand::store::Store;

const INSTANCE: &str = "t";

/// One test's manifests directory, state file and fake engine.
struct World {
    _dir: tempfile::TempDir,
    manifests: PathBuf,
    prune_delay: std::time::Duration,
    take_over: bool,
    state: PathBuf,
    engine: FakeEngine,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).expect("mkdir");
        World {
            state: dir.path().join("state.db"),
            manifests,
            _dir: dir,
            engine: FakeEngine::new(),
            prune_delay: std::time::Duration::ZERO,
            take_over: false,
        }
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.manifests.join(file), text).expect("write manifest");
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.manifests.join(file)).expect("remove manifest");
    }

    async fn reconciler(&self, allow_empty: bool) -> Reconciler<FakeEngine> {
        let store = Store::open(&self.state).await.expect("state file");
        let options = Options {
            instance: INSTANCE.into(),
            allow_empty,
            parallel: 4,
            backoff: BackoffPolicy::default(),
            prune_delay: self.prune_delay,
            take_over: self.take_over,
            host_policy: Default::default(),
            manifests: Some(self.manifests.clone()),
            subnet_pool: None,
        };
        Reconciler::new(self.engine.clone(), store, options)
    }

    async fn pass(&self) -> PassReport {
        let rec = self.reconciler(false).await;
        rec.pass(&directory::load(&self.manifests))
            .await
            .expect("pass")
    }

    /// Passes until one finds nothing to do.
    async fn converge(&self) -> PassReport {
        for _ in 0..10 {
            let report = self.pass().await;
            if report.converged() {
                return report;
            }
        }
        panic!("no convergence in 10 passes");
    }

    /// This instance's container ids by name.
    fn ours(&self) -> HashMap<String, String> {
        let prefix = format!("dh_{INSTANCE}_");
        self.engine
            .containers()
            .into_iter()
            .filter(|(_, name, _)| name.starts_with(&prefix))
            .map(|(id, name, _)| (name, id))
            .collect()
    }
}

fn server(name: &str, extra: &str) -> String {
    format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n{extra}")
}

fn container(name: &str) -> String {
    format!("dh_{INSTANCE}_server_{name}")
}

fn actions_for<'a>(report: &'a PassReport, name: &str) -> Vec<&'a Action> {
    report
        .plan
        .actions
        .iter()
        .filter(|a| a.key().is_some_and(|k| k.name == name))
        .collect()
}

/// The status a pass recorded for the server or database `name`.
fn status_of<'a>(report: &'a PassReport, name: &str) -> &'a dockhand::store::Status {
    report
        .statuses
        .iter()
        .find(|s| s.key.as_ref().is_some_and(|k| k.name == name))
        .expect("status")
}

#[tokio::test]
async fn a_changed_spec_recreates_only_its_object() {
    let w = World::new();
    w.write("a.yaml", &server("a", ""));
    w.write("b.yaml", &server("b", ""));
    w.converge().await;
    let before = w.ours();

    w.write("a.yaml", &server("a", "  command: [sleep, '1']\n"));
    let report = w.pass().await;
    assert!(
        matches!(actions_for(&report, "a")[..], [Action::Recreate { .. }]),
        "{:?}",
        report.plan.actions
    );
    assert!(actions_for(&report, "b").is_empty(), "b was touched");
    w.converge().await;
    let after = w.ours();
    assert_ne!(after[&container("a")], before[&container("a")]);
    assert_eq!(after[&container("b")], before[&container("b")]);
}

#[tokio::test]
async fn a_registry_that_never_answers_never_holds_a_pass_up() {
    // Four servers following tags on a registry that accepts and never answers: the passes
    // went 26 s late, and killed containers came back after 99-177 s.
    let w = World::new();
    w.engine.registry_hangs();
    for name in ["a", "b", "c", "d"] {
        w.write(
            &format!("{name}.yaml"),
            &format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: 127.0.0.1:18411/hang/{name}:1\n  update: {{image: Poll}}\n"),
        );
    }
    let report = tokio::time::timeout(std::time::Duration::from_secs(10), w.converge())
        .await
        .expect("the passes were held up by the registry");
    assert!(report.converged());
    assert_eq!(w.ours().len(), 4);
}

#[tokio::test]
async fn an_orphan_is_removed_after_its_manifest_is_deleted() {
    let w = World::new();
    w.write("a.yaml", &server("a", ""));
    w.write("b.yaml", &server("b", ""));
    w.converge().await;
    w.remove("b.yaml");
    w.converge().await;
    let names: Vec<String> = w.ours().into_keys().collect();
    assert_eq!(names, [container("a")]);
}

#[tokio::test]
async fn containers_of_other_instances_and_strangers_are_never_touched() {
    let w = World::new();
    let mut other = labels::owner_labels("other");
    other.insert(labels::KIND.into(), "server".into());
    other.insert(labels::NAME.into(), "a".into());
    let theirs = w.engine.insert("dh_other_server_a", other);
    let stranger = w.engine.insert("web", HashMap::new());
    let before = w.engine.containers();

    w.write("a.yaml", &server("a", ""));
    w.converge().await;
    w.remove("a.yaml");
    let rec = w.reconciler(true).await;
    rec.pass(&directory::load(&w.manifests))
        .await
        .expect("pass");

    assert!(w.ours().is_empty(), "our own container was not pruned");
    let after = w.engine.containers();
    for id in [&theirs, &stranger] {
        let find = |list: &[(String, String, State)]| list.iter().find(|c| &c.0 == id).cloned();
        assert_eq!(find(&after), find(&before), "{id} was touched");
    }
}

#[tokio::test]
async fn a_manifest_that_fails_to_parse_removes_nothing() {
    let w = World::new();
    w.write("a.yaml", &server("a", ""));
    w.write("b.yaml", &server("b", ""));
    w.converge().await;
    let before = w.ours();

    w.write(
        "b.yaml",
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: b}\nspec: [\n",
    );
    let report = w.pass().await;
    assert!(
        !report.errors.is_empty(),
        "the broken file was not reported"
    );
    assert!(
        report.converged(),
        "a broken file changed the plan: {:?}",
        report.plan.actions
    );
    assert_eq!(w.ours(), before);
}

#[tokio::test]
async fn an_empty_source_prunes_only_with_allow_empty() {
    let w = World::new();
    w.write("a.yaml", &server("a", ""));
    w.converge().await;
    w.remove("a.yaml");
    w.pass().await;
    w.pass().await;
    assert_eq!(w.ours().len(), 1, "an empty source pruned without opt-in");

    let rec = w.reconciler(true).await;
    rec.pass(&directory::load(&w.manifests))
        .await
        .expect("pass");
    assert!(w.ours().is_empty(), "allowEmpty did not prune");
}

#[tokio::test]
async fn a_container_that_dies_is_started_again_in_place() {
    let w = World::new();
    w.write("a.yaml", &server("a", ""));
    w.converge().await;
    let id = w.ours()[&container("a")].clone();

    w.engine.exit(&id, 1);
    let report = w.pass().await;
    assert!(
        matches!(
            actions_for(&report, "a")[..],
            [Action::Start { restart: true, .. }]
        ),
        "{:?}",
        report.plan.actions
    );
    let state = w.engine.containers().into_iter().find(|c| c.0 == id);
    assert_eq!(state.map(|c| c.2), Some(State::Running));
}

#[tokio::test]
async fn a_dependent_is_created_only_once_its_dependency_runs() {
    let w = World::new();
    w.write("db.yaml", &server("db", ""));
    w.write("web.yaml", &server("web", "  dependsOn: [db]\n"));
    let first = w.pass().await;
    let created: Vec<&str> = first
        .plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Create { .. }))
        .filter_map(|a| a.key().map(|k| k.name.as_str()))
        .collect();
    assert_eq!(created, ["db"], "web did not wait for db");
    w.converge().await;
    assert_eq!(w.ours().len(), 2);
}

#[tokio::test]
async fn a_dry_run_plans_without_touching_the_engine() {
    let w = World::new();
    w.write("a.yaml", &server("a", ""));
    let rec = w.reconciler(false).await;
    let report = rec
        .dry_run(&directory::load(&w.manifests))
        .await
        .expect("dry run");
    assert!(matches!(
        actions_for(&report, "a")[..],
        [Action::Create { .. }]
    ));
    assert!(w.engine.containers().is_empty());
}

#[tokio::test]
async fn a_database_whose_volume_outlived_its_state_file_is_held_and_its_volume_kept() {
    use dockhand::engine::Engine;
    let w = World::new();
    let volume = format!("dh_{INSTANCE}_orders-data");
    w.engine
        .ensure_volume(&volume, &labels::owner_labels(INSTANCE))
        .await
        .expect("volume");
    w.write(
        "db.yaml",
        "apiVersion: dockhand/v1\nkind: Database\nmetadata: {name: orders}\nspec: {readyTimeout: 1s}\n",
    );
    for _ in 0..3 {
        let report = w.pass().await;
        assert!(report.plan.actions.is_empty(), "{:?}", report.plan.actions);
        let status = status_of(&report, "orders");
        assert_eq!(status.phase, dockhand::manifest::Phase::Invalid);
        assert!(status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("db adopt orders"));
    }
    assert_eq!(w.engine.volumes(), [volume]);
    assert!(w.engine.containers().is_empty());
    let store = Store::open(&w.state).await.expect("state file");
    assert!(
        store.database_secrets().await.expect("secrets").is_empty(),
        "a new password was made up"
    );
}

#[tokio::test]
async fn a_server_binding_the_host_root_is_invalid_and_never_created() {
    let w = World::new();
    w.write(
        "a.yaml",
        &server(
            "a",
            "  volumes:\n    - {type: bind, source: /, target: /host}\n",
        ),
    );
    let report = w.pass().await;
    assert!(report.plan.actions.is_empty(), "{:?}", report.plan.actions);
    let status = status_of(&report, "a");
    assert_eq!(status.phase, dockhand::manifest::Phase::Invalid);
    let message = status.message.as_deref().unwrap_or_default();
    assert!(message.contains("--allow-host-path"), "{message}");
    assert!(w.engine.containers().is_empty());
}

fn two_servers() -> String {
    format!("{}---\n{}", server("web", ""), server("api", ""))
}

/// What a file can look like while it is rewritten, replaced or broken in place.
/// A way to break a file, by name.
type Breakage = (&'static str, Box<dyn Fn()>);

fn mid_rewrite(w: &World) -> Vec<Breakage> {
    let path = w.manifests.join("a.yaml");
    let reset = {
        let path = path.clone();
        move || {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir(&path);
        }
    };
    let with = |what: &'static str, f: Box<dyn Fn(&std::path::Path)>| -> Breakage {
        let path = path.clone();
        let reset = reset.clone();
        (
            what,
            Box::new(move || {
                reset();
                f(&path);
            }),
        )
    };
    vec![
        with("empty", Box::new(|p| std::fs::write(p, "").expect("write"))),
        with(
            "only a comment",
            Box::new(|p| std::fs::write(p, "# soon\n").expect("write")),
        ),
        with(
            "cut at ---",
            Box::new(|p| std::fs::write(p, server("web", "") + "---\n").expect("write")),
        ),
        with(
            "CR line ends",
            Box::new(|p| std::fs::write(p, two_servers().replace('\n', "\r")).expect("write")),
        ),
        with(
            "a directory",
            Box::new(|p| std::fs::create_dir(p).expect("mkdir")),
        ),
        with(
            "a dangling link",
            Box::new(|p| std::os::unix::fs::symlink("/nonexistent/x.yaml", p).expect("symlink")),
        ),
        with(
            "a FIFO",
            Box::new(|p| {
                let ok = std::process::Command::new("mkfifo")
                    .arg(p)
                    .status()
                    .expect("mkfifo");
                assert!(ok.success());
            }),
        ),
    ]
}

#[tokio::test]
async fn a_file_rewritten_in_place_removes_nothing() {
    let mut w = World::new();
    w.prune_delay = std::time::Duration::from_secs(3600);
    let rec = w.reconciler(false).await;
    w.write("a.yaml", &two_servers());
    for _ in 0..5 {
        rec.pass(&directory::load(&w.manifests))
            .await
            .expect("pass");
    }
    let before = w.ours();
    assert_eq!(before.len(), 2);
    for (what, make) in mid_rewrite(&w) {
        make();
        let report = rec
            .pass(&directory::load(&w.manifests))
            .await
            .expect("pass");
        let removes: Vec<_> = report
            .plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Remove { .. }))
            .collect();
        assert!(removes.is_empty(), "{what}: {removes:?}");
        assert_eq!(w.ours(), before, "{what}");
    }
}

#[tokio::test]
async fn an_object_gone_longer_than_the_prune_delay_is_removed_and_one_back_sooner_is_not() {
    let mut w = World::new();
    w.prune_delay = std::time::Duration::from_millis(300);
    let rec = w.reconciler(false).await;
    w.write("a.yaml", &server("a", ""));
    w.write("b.yaml", &server("b", ""));
    w.write("c.yaml", &server("c", ""));
    for _ in 0..5 {
        rec.pass(&directory::load(&w.manifests))
            .await
            .expect("pass");
    }
    w.remove("b.yaml");
    w.remove("c.yaml");
    let report = rec
        .pass(&directory::load(&w.manifests))
        .await
        .expect("pass");
    assert!(report.plan.actions.is_empty(), "{:?}", report.plan.actions);
    assert_eq!(report.pending_prunes.len(), 2);
    assert!(!report.settled(), "sync must wait for the prune delay");
    w.write("c.yaml", &server("c", ""));
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let report = rec
        .pass(&directory::load(&w.manifests))
        .await
        .expect("pass");
    assert!(
        matches!(actions_for(&report, "b")[..], [Action::Remove { .. }]),
        "{:?}",
        report.plan.actions
    );
    assert!(actions_for(&report, "c").is_empty(), "c came back in time");
    rec.pass(&directory::load(&w.manifests))
        .await
        .expect("pass");
    let mut names: Vec<String> = w.ours().into_keys().collect();
    names.sort();
    assert_eq!(names, [container("a"), container("c")]);
}

#[tokio::test]
async fn two_state_files_on_one_instance_never_remove_or_replace_each_others_containers() {
    let a = World::new();
    let mut b = World::new();
    b.engine = a.engine.clone();
    a.write("web.yaml", &server("web", ""));
    a.converge().await;
    let web = a.ours()[&container("web")].clone();

    // b knows nothing of web: it is not b's orphan to remove.
    b.write("other.yaml", &server("other", ""));
    b.converge().await;
    assert_eq!(b.ours().get(&container("web")), Some(&web));
    // b wants web with another spec: it is held, not replaced.
    b.write("web.yaml", &server("web", "  command: [sleep, '2']\n"));
    let report = b.converge().await;
    assert_eq!(b.ours()[&container("web")], web, "b replaced a's container");
    let status = status_of(&report, "web");
    assert_eq!(status.phase, dockhand::manifest::Phase::Invalid);
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("--take-over"),
        "{status:?}"
    );

    // An explicit takeover replaces it, and then a leaves b's container alone in turn.
    b.take_over = true;
    b.converge().await;
    let taken = b.ours()[&container("web")].clone();
    assert_ne!(taken, web);
    b.take_over = false;
    b.converge().await;
    a.converge().await;
    assert_eq!(a.ours()[&container("web")], taken, "a fought back");
}

/// What invalid input looks like: random bytes, or a valid manifest cut, spliced or garbled.
fn mangled() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let base = server("x", "  ports: [{container: 80}]\n  env: {A: \"1\"}\n");
    let (b1, b2) = (base.clone(), base.clone());
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        // The base is ASCII: every index is a character boundary.
        (0..base.len()).prop_map(move |at| b1[..at].to_owned()),
        (0..base.len(), 0usize..12, "[ -~\n\r\t]{0,8}").prop_map(move |(at, len, ins)| {
            let end = (at + len).min(b2.len());
            format!("{}{ins}{}", &b2[..at], &b2[end..])
        }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Bytes and mutations through every source (a file, a table row, an API body) never panic
    /// and never remove a container: what they defined stays until a clean removal.
    #[test]
    fn mangled_input_through_every_source_never_deletes_anything(text in mangled()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let mut w = World::new();
            w.prune_delay = std::time::Duration::from_secs(3600);
            let rec = w.reconciler(false).await;
            let pool = sqlx::SqlitePool::connect_with(
                sqlx::sqlite::SqliteConnectOptions::new().filename(&w.state),
            )
            .await
            .expect("pool");
            let row = |yaml: String| {
                let pool = pool.clone();
                async move {
                    sqlx::query("INSERT OR REPLACE INTO manifests (instance, name, yaml) VALUES (?, 'r', ?)")
                        .bind(INSTANCE)
                        .bind(yaml)
                        .execute(&pool)
                        .await
                        .expect("row");
                }
            };
            let sources = dockhand::source::Sources {
                dir: Some(w.manifests.clone()),
                store: Store::open(&w.state).await.expect("store"),
                instance: INSTANCE.into(),
                allow_empty: false,
                compose: Default::default(),
                git: Vec::new(),
            };
            w.write("x.yaml", &server("x", ""));
            row(server("r", "")).await;
            for _ in 0..4 {
                rec.pass(&sources.load().await.expect("load")).await.expect("pass");
            }
            let before = w.ours();
            assert_eq!(before.len(), 2);

            w.write("x.yaml", &text);
            row(text.clone()).await;
            let _ = dockhand::source::applied::parse(&text, "api:server/x", None);
            let report = rec.pass(&sources.load().await.expect("load")).await.expect("pass");
            let removes: Vec<_> = report
                .plan
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Remove { .. }))
                .collect();
            assert!(removes.is_empty(), "{text:?}: {removes:?}");
            for name in [container("x"), container("r")] {
                assert!(w.ours().contains_key(&name), "{text:?}: {name} is gone");
            }
        });
    }
}
