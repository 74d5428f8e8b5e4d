//! Crashes at random points: `kill -9` of `sync` and of `up` during a cold converge, a recreate
//! of every object and a removal of every object. Deterministic names and labels mean whatever
//! a crash leaves half done, the next run finds and finishes: each case must end with exactly
//! the right containers, each once, all running. Bounded (a few kill points per phase) so the
//! suite stays quick; the points vary with the process id.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{server, text, Env};

const OBJECTS: usize = 5;

/// The delays after which the process is killed, spread over a converge's few hundred ms.
fn kill_points() -> Vec<Duration> {
    let seed = u64::from(std::process::id());
    (0..5)
        .map(|i| Duration::from_millis(30 + (seed * 7919 + i * 104_729) % 700))
        .collect()
}

fn write_all(env: &Env, version: &str) {
    for i in 0..OBJECTS {
        env.write(
            &format!("s{i}.yaml"),
            &server(
                &format!("s{i}"),
                &format!("  env: {{VERSION: \"{version}\"}}\n"),
            ),
        );
    }
}

fn remove_all(env: &Env) {
    for i in 0..OBJECTS {
        let _ = std::fs::remove_file(env.manifests.join(format!("s{i}.yaml")));
    }
}

/// Starts `verb`, kills it with SIGKILL after `after`, and waits for it to be gone.
fn kill_during(env: &Env, verb: &str, args: &[&str], after: Duration) {
    let mut cmd = env.command(verb);
    if verb == "up" {
        cmd.args(["--api", "none"]);
    }
    cmd.args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn dockhand");
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
}

/// Exactly the wanted servers, each in one running container, on the current version.
fn assert_exactly(env: &Env, want: &BTreeSet<String>, version: &str, case: &str) {
    let cs = env.containers();
    let names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
    let unique: BTreeSet<String> = names.iter().cloned().collect();
    let expected: BTreeSet<String> = want
        .iter()
        .map(|n| format!("dh_{}_server_{n}", env.instance))
        .collect();
    assert_eq!(unique, expected, "{case}: wrong containers");
    assert_eq!(names.len(), unique.len(), "{case}: duplicates {names:?}");
    for c in &cs {
        assert!(c.running(), "{case}: {} is {}", c.name, c.state);
        if !version.is_empty() {
            let env_of = common::docker(&["inspect", "-f", "{{json .Config.Env}}", &c.id]);
            assert!(
                env_of.contains(&format!("VERSION={version}")),
                "{case}: {} runs an old spec: {env_of}",
                c.name
            );
        }
    }
}

fn crash_and_heal(verb: &str) -> usize {
    let Some(env) = Env::new(&format!("faults-{verb}")) else {
        return 0;
    };
    let all: BTreeSet<String> = (0..OBJECTS).map(|i| format!("s{i}")).collect();
    let none = BTreeSet::new();
    let heal = |case: &str, extra: &[&str]| {
        let mut args = vec!["--timeout", "90s", "--prune-delay", "0s"];
        args.extend_from_slice(extra);
        let out = env.run("sync", &args);
        assert!(out.status.success(), "{case}: {}", text(&out));
    };
    let mut survived = 0;
    for (n, after) in kill_points().into_iter().enumerate() {
        // A cold converge.
        write_all(&env, &format!("a{n}"));
        kill_during(&env, verb, &[], after);
        heal("cold converge", &[]);
        assert_exactly(&env, &all, &format!("a{n}"), "cold converge");
        // A recreate of every object.
        write_all(&env, &format!("b{n}"));
        kill_during(&env, verb, &[], after);
        heal("recreate", &[]);
        assert_exactly(&env, &all, &format!("b{n}"), "recreate");
        // A removal of every object.
        remove_all(&env);
        kill_during(&env, verb, &["--allow-empty", "--prune-delay", "0s"], after);
        heal("removal", &["--allow-empty"]);
        assert_exactly(&env, &none, "", "removal");
        survived += 3;
    }
    survived
}

#[test]
fn kill_9_of_sync_at_any_point_is_healed_by_the_next_run() {
    let n = crash_and_heal("sync");
    eprintln!("sync: {n} kill points survived");
}

#[test]
fn kill_9_of_up_at_any_point_is_healed_by_the_next_run() {
    let n = crash_and_heal("up");
    eprintln!("up: {n} kill points survived");
}
