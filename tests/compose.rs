//! Compose files as they are, against the real engine: a web + api + database + cache project
//! (tests/fixtures/compose/shop) converges with health-ordered start-up, its services reach each
//! other by name on their networks only, an edit recreates only the service it changes, a
//! removed service goes, a broken file keeps everything, and the project is pruned only on
//! request, its data volume kept. `dockhand convert` writes manifests that run the very same
//! containers.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{docker, text, Env, RemoveBuilds};

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/compose/shop"
    ))
}

/// Copies the fixture project into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A server's container, also when its name carries its spec (update order StartFirst).
fn container(env: &Env, name: &str) -> Option<common::Container> {
    let full = format!("dh_{}_server_{name}", env.instance);
    env.containers()
        .into_iter()
        .find(|c| c.name == full || c.name.starts_with(&format!("{full}-")))
}

fn exec_ok(id: &str, args: &[&str]) -> bool {
    let mut cmd = Command::new("docker");
    cmd.args(["exec", id]).args(args);
    cmd.output().is_ok_and(|o| o.status.success())
}

fn fetch(id: &str, url: &str) -> String {
    docker(&["exec", id, "wget", "-qO-", url]).trim().to_owned()
}

fn sync(env: &Env, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--timeout", "180s"];
    all.extend(args);
    env.run("sync", &all)
}

#[test]
fn a_compose_project_converges_is_edited_and_pruned_like_any_source() {
    common::postgres_image();
    let Some(env) = Env::new("compose") else {
        return;
    };
    let _builds = RemoveBuilds(env.instance.clone());
    let project = env.manifests.join("shop");
    copy_dir(fixture(), &project);

    let out = sync(&env, &[]);
    assert!(out.status.success(), "{}", text(&out));
    for s in ["web", "api", "db", "cache"] {
        let c = container(&env, s).unwrap_or_else(|| panic!("no {s}: {}", text(&out)));
        assert!(c.running(), "{s} not running");
        assert_eq!(c.label("compose.project").as_deref(), Some("shop"));
    }
    assert_eq!(
        env.status_of("server", "migrate").expect("migrate")["phase"],
        "Completed",
        "a one-shot service ran to completion before api started"
    );
    assert!(
        container(&env, "debug").is_none(),
        "a profile's service stays off"
    );

    // By name, on the networks they share, and nowhere else.
    let web = container(&env, "web").expect("web");
    let api = container(&env, "api").expect("api");
    let answer = common::eventually(Duration::from_secs(30), "web to reach api", || {
        let got = fetch(&web.id, "http://api:8080/");
        (!got.is_empty()).then_some(got)
    });
    assert_eq!(
        answer, "hello plain k-123",
        "env, build arg and secret reach the api"
    );
    assert!(exec_ok(
        &api.id,
        &["sh", "-c", "nc cache 6379 </dev/null | grep -q PONG"]
    ));
    assert_eq!(
        fetch(&api.id, "http://backend:8080/"),
        answer,
        "a network alias answers"
    );
    assert!(
        !exec_ok(&web.id, &["nslookup", "db"]),
        "web is on the front network only and must not see db"
    );
    let get = env.run("get", &["servers"]);
    let table = String::from_utf8_lossy(&get.stdout);
    assert!(
        table.lines().next().unwrap_or_default().contains("PROJECT")
            && table
                .lines()
                .any(|l| l.starts_with("server/db") && l.contains("shop")),
        "{table}"
    );

    // An edit of .env changes the api's environment only: nothing else is recreated.
    let before: Vec<String> = ["web", "db", "cache"]
        .iter()
        .map(|s| container(&env, s).expect("container").id)
        .collect();
    std::fs::write(
        project.join(".env"),
        "DB_PASSWORD=compose-test-only\nGREETING=bonjour\n",
    )
    .expect("write .env");
    let out = sync(&env, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let api2 = container(&env, "api").expect("api after the edit");
    assert_ne!(api2.id, api.id, "the api was not recreated");
    let after: Vec<String> = ["web", "db", "cache"]
        .iter()
        .map(|s| container(&env, s).expect("container").id)
        .collect();
    assert_eq!(
        before, after,
        "services the edit did not touch were recreated"
    );
    assert_eq!(fetch(&web.id, "http://api:8080/"), "bonjour plain k-123");

    // A file that no longer parses changes nothing and says where it broke.
    let good = std::fs::read_to_string(project.join("compose.yaml")).expect("read");
    std::fs::write(
        project.join("compose.yaml"),
        good.replace(
            "    restart: always\n\n  api:",
            "    restart: always\n    imgae: typo\n\n  api:",
        ),
    )
    .expect("write");
    let out = sync(&env, &[]);
    let said = text(&out);
    assert!(
        said.contains("shop/compose.yaml:") && said.contains("services.web.imgae: unknown key"),
        "{said}"
    );
    assert_eq!(container(&env, "web").expect("web kept").id, web.id);

    // A service removed from the file goes; the others stay.
    let without_cache = good
        .replace("      cache:\n        condition: service_started\n", "")
        .replace(
            "  cache:\n    <<: *busybox\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do echo PONG | nc -l -p 6379; done\"]\n    volumes: [/data]\n    networks: [back]\n    restart: always\n\n",
            "",
        );
    assert!(
        !without_cache.contains("  cache:"),
        "the fixture changed: update this test"
    );
    std::fs::write(project.join("compose.yaml"), without_cache).expect("write");
    let out = sync(&env, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(container(&env, "cache").is_none(), "cache was not removed");
    assert_eq!(container(&env, "db").expect("db kept").id, before[1]);

    // The whole project gone: nothing is pruned without --allow-empty, then all is, but the
    // database's volume stays.
    std::fs::remove_dir_all(&project).expect("remove project");
    let out = sync(&env, &[]);
    assert!(
        container(&env, "db").is_some(),
        "pruned without --allow-empty: {}",
        text(&out)
    );
    let out = sync(&env, &["--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    let volume = format!("dh_{}_shop_db-data", env.instance);
    assert_eq!(
        docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{volume}$")
        ])
        .trim(),
        volume
    );
}

/// A small project, no database: a server and what it depends on.
const SMALL: &str = r#"
services:
  front:
    image: dockhand/busybox:local
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
    volumes: [./www:/www:ro, state:/state]
    ports: ["127.0.0.1::8080"]
    depends_on: [helper]
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/"]
      interval: 1s
    x-dockhand: {onUnhealthy: None}
  helper:
    image: dockhand/busybox:local
    pull_policy: never
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    restart: always
  tools:
    image: dockhand/busybox:local
    pull_policy: never
    profiles: [tools]
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
volumes:
  state:
"#;

#[test]
fn converted_manifests_run_the_containers_the_compose_file_ran() {
    let Some(env) = Env::new("convert") else {
        return;
    };
    let project = env.manifests.join("small");
    std::fs::create_dir_all(project.join("www")).expect("mkdir");
    std::fs::write(project.join("www/index.html"), "small\n").expect("write");
    std::fs::write(project.join("compose.yaml"), SMALL).expect("write");
    let out = sync(&env, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let ids: Vec<String> = ["front", "helper"]
        .iter()
        .map(|s| container(&env, s).expect("container").id)
        .collect();

    // Moving over for good: the compose file out, its conversion in, nothing recreated.
    let converted = env.manifests.join("converted");
    let out = Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .arg("convert")
        .arg("-f")
        .arg(project.join("compose.yaml"))
        .arg("-o")
        .arg(&converted)
        .output()
        .expect("run convert");
    assert!(out.status.success(), "{}", text(&out));
    let front = std::fs::read_to_string(converted.join("front.yaml")).expect("front.yaml");
    assert!(front.starts_with("# Converted by dockhand from"), "{front}");
    assert!(front.contains("source: ../small/www"), "{front}");
    std::fs::remove_file(project.join("compose.yaml")).expect("remove compose file");
    let out = sync(&env, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let now: Vec<String> = ["front", "helper"]
        .iter()
        .map(|s| container(&env, s).expect("container").id)
        .collect();
    assert_eq!(ids, now, "converting recreated containers:\n{front}");
}

#[test]
fn a_compose_file_outside_the_manifests_directory_is_read_with_its_profiles() {
    let Some(env) = Env::new("compose-flag") else {
        return;
    };
    let project = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(project.join("www")).expect("mkdir");
    std::fs::write(project.join("www/index.html"), "elsewhere\n").expect("write");
    let file = project.join("docker-compose.yml");
    std::fs::write(&file, SMALL).expect("write");
    let file = file.to_str().expect("utf-8");
    let out = sync(&env, &["--compose", file, "--profile", "tools"]);
    assert!(out.status.success(), "{}", text(&out));
    for s in ["front", "helper", "tools"] {
        assert!(
            container(&env, s).is_some_and(|c| c.running()),
            "{s}: {}",
            text(&out)
        );
    }
    // The project's own bind (./www) was allowed: the operator named the file.
    let front = container(&env, "front").expect("front");
    assert_eq!(fetch(&front.id, "http://127.0.0.1:8080/"), "elsewhere");
    // Without the profile, its service goes.
    let out = sync(&env, &["--compose", file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(container(&env, "tools").is_none());
}

#[test]
fn up_follows_a_compose_file_outside_the_manifests_directory_as_it_is_edited() {
    let Some(env) = Env::new("compose-up") else {
        return;
    };
    let project = env.dir.path().join("watched");
    std::fs::create_dir_all(project.join("www")).expect("mkdir");
    let file = project.join("compose.yaml");
    let one = "services:\n  solo:\n    image: dockhand/busybox:local\n    pull_policy: never\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n";
    std::fs::write(&file, one).expect("write");
    // A resync of an hour: only the watch on the project's directory can see the edit in time.
    let mut up = env.up(&["--resync", "1h", "--compose", file.to_str().expect("utf-8")]);
    common::eventually(Duration::from_secs(60), "solo to run", || {
        container(&env, "solo").filter(|c| c.running())
    });
    let two = format!("{one}  duo:\n    image: dockhand/busybox:local\n    pull_policy: never\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n");
    let tmp = project.join(".compose.yaml.tmp");
    std::fs::write(&tmp, two).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
    common::eventually(Duration::from_secs(30), "duo from the edit to run", || {
        container(&env, "duo").filter(|c| c.running())
    });
    up.stop();
}

#[test]
fn anchors_and_selinux_flags_of_a_real_projects_shape_converge() {
    let Some(env) = Env::new("compose-anchors") else {
        return;
    };
    // What real projects write: a shared block through an anchor and merge key, `:z`/`:Z` on
    // binds and volumes, and a flag that only Docker Desktop reads.
    let project = env.manifests.join("shop");
    std::fs::create_dir_all(project.join("conf")).expect("mkdir");
    std::fs::write(project.join("conf/app.conf"), "x=1\n").expect("write");
    env.write(
        "shop/compose.yaml",
        &format!(
            "x-common: &common\n  image: {}\n  pull_policy: never\n  command: [sleep, '3600']\n  healthcheck: &hc\n    test: [CMD, 'true']\n    interval: 1s\n    retries: 3\nservices:\n  app:\n    <<: *common\n    volumes: ['./conf:/conf:ro,Z', 'data:/data:z', './conf:/cached:cached']\n  worker:\n    <<: *common\n    healthcheck:\n      <<: *hc\n      retries: 5\nvolumes:\n  data: {{}}\n",
            common::IMAGE
        ),
    );
    let out = sync(&env, &[]);
    assert!(
        text(&out).contains("cached"),
        "one warning for the flag:\n{}",
        text(&out)
    );
    let app = container(&env, "app").expect("app");
    let binds = docker(&["inspect", "-f", "{{json .HostConfig.Binds}}", &app.id]);
    assert!(binds.contains("/conf:ro,Z"), "{binds}");
    assert!(binds.contains(":/data:rw,z"), "{binds}");
    let worker = container(&env, "worker").expect("worker");
    let retries = docker(&[
        "inspect",
        "-f",
        "{{.Config.Healthcheck.Retries}}",
        &worker.id,
    ]);
    assert_eq!(retries.trim(), "5");
}

#[test]
fn pids_limits_dns_and_internal_networks_reach_the_engine() {
    let Some(env) = Env::new("compose-options") else {
        return;
    };
    env.write(
        "app/compose.yaml",
        &format!(
            "services:\n  app:\n    image: {}\n    pull_policy: never\n    command: [sleep, '3600']\n    pids_limit: 100\n    dns: [192.0.2.53]\n    dns_search: example.com\n    dns_opt: ['ndots:2']\n    networks: [back]\nnetworks:\n  back:\n    internal: true\n    driver_opts: {{com.docker.network.driver.mtu: '1400'}}\n",
            common::IMAGE
        ),
    );
    let out = sync(&env, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let app = container(&env, "app").expect("app");
    let host = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.PidsLimit}} {{json .HostConfig.Dns}} {{json .HostConfig.DnsSearch}} {{json .HostConfig.DnsOptions}}",
        &app.id,
    ]);
    assert_eq!(
        host.trim(),
        r#"100 ["192.0.2.53"] ["example.com"] ["ndots:2"]"#
    );
    let net = format!("dh_{}_app-back", env.instance);
    let shown = docker(&[
        "network",
        "inspect",
        "-f",
        "{{.Internal}} {{json .Options}}",
        &net,
    ]);
    assert!(shown.starts_with("true "), "{shown}");
    assert!(
        shown.contains("\"com.docker.network.driver.mtu\":\"1400\""),
        "{shown}"
    );
}
