//! Images built from source against the real engine: built once, rebuilt (and the server
//! rolled) when the context changes but not when an ignored file does, and a failed build
//! reported with its output while the running container stays.

mod common;

use common::{docker, text, Env, RemoveBuilds, IMAGE};

#[test]
fn a_server_built_from_source_is_rebuilt_and_rolled_when_its_context_changes() {
    let Some(env) = Env::new("build") else {
        return;
    };
    let _builds = RemoveBuilds(env.instance.clone());
    let dockerfile = format!(
        "FROM {IMAGE}\nARG GREETING=none\nCOPY app.sh /app.sh\nRUN echo \"$GREETING\" > /greeting\nCMD [\"sh\", \"/app.sh\"]\n"
    );
    env.write("api/Dockerfile", &dockerfile);
    env.write(
        "api/app.sh",
        "trap 'exit 0' TERM; echo v1 > /tmp/v; sleep 3600 & wait\n",
    );
    env.write("api/.dockerignore", "*.log\n");
    env.write("api/debug.log", "noise\n");
    env.write(
        "api.yaml",
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: api}\nspec:\n  build: {context: ./api, args: {GREETING: hi}}\n",
    );
    let sync = |ok: bool| {
        let out = env.run("sync", &["--timeout", "120s"]);
        assert_eq!(out.status.success(), ok, "{}", text(&out));
        out
    };
    sync(true);
    let c = env.container("api").expect("container");
    assert!(c.running(), "{}", c.state);
    let exec = |id: &str, cmd: &str| docker(&["exec", id, "sh", "-c", cmd]).trim().to_owned();
    assert_eq!(exec(&c.id, "cat /greeting"), "hi");
    assert_eq!(
        exec(&c.id, "test -e /debug.log && echo sent || echo ignored"),
        "ignored"
    );
    let image = docker(&["inspect", "-f", "{{.Config.Image}}", &c.id]);
    let prefix = format!("dh_{}_api:", env.instance);
    assert!(image.trim().starts_with(&prefix), "{image}");
    // Nothing changed, or only an ignored file: no build, no recreate.
    sync(true);
    env.write("api/debug.log", "more noise\n");
    sync(true);
    assert_eq!(
        env.container("api").expect("container").id,
        c.id,
        "needless recreate"
    );
    // The context changed: a new image, and the server rolled onto it.
    env.write(
        "api/app.sh",
        "trap 'exit 0' TERM; echo v2 > /tmp/v; sleep 3600 & wait\n",
    );
    sync(true);
    let c2 = env.container("api").expect("container");
    assert_ne!(c2.id, c.id, "not rolled onto the new build");
    assert!(common::eventually(
        std::time::Duration::from_secs(20),
        "v2 runs",
        || { (exec(&c2.id, "cat /tmp/v") == "v2").then_some(true) }
    ));
    // Earlier builds go once no container uses them: after a third build, the first is gone
    // and only the one still running at that moment stays beside the new one.
    let first_image = image.trim().to_owned();
    env.write(
        "api/app.sh",
        "trap 'exit 0' TERM; echo v3 > /tmp/v; sleep 3600 & wait\n",
    );
    sync(true);
    let c3 = env.container("api").expect("container");
    assert_ne!(c3.id, c2.id);
    let repo = format!("dh_{}_api", env.instance);
    let tags = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &repo]);
    let tags: Vec<&str> = tags.split_whitespace().collect();
    assert!(
        !tags.contains(&first_image.as_str()),
        "the first build stayed: {tags:?}"
    );
    assert_eq!(tags.len(), 2, "{tags:?}");
    let c2 = c3;
    // A failed build: Failed with its output, and the running container stays.
    env.write(
        "api/Dockerfile",
        &dockerfile.replace("RUN echo", "RUN echo broken-step && exit 3 && echo"),
    );
    let out = sync(false);
    let st = env.status_of("server", "api").expect("status");
    assert_eq!(st["phase"], "Failed", "{st}");
    let message = st["message"].as_str().unwrap_or_default();
    assert!(message.contains("building image"), "{st}\n{}", text(&out));
    assert!(
        message.contains("broken-step") || message.contains("exit"),
        "{st}"
    );
    let kept = env.container("api").expect("kept");
    assert_eq!(kept.id, c2.id);
    assert!(kept.running());
}
