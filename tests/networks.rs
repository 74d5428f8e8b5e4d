//! Networks against the real engine: static addresses, networks dockhand creates and removes
//! (and the foreign ones it leaves alone), and a network recreated under its containers.

mod common;

use std::time::Duration;

use common::{docker, text, Env};

#[test]
fn static_ips_on_a_declared_network() {
    let Some(env) = Env::new("net-static") else {
        return;
    };
    // A subnet of its own per run; nothing is sent to it.
    let third = 100 + (std::process::id() % 150);
    env.write(
        "net.yaml",
        &format!("apiVersion: dockhand/v1\nkind: Network\nmetadata: {{name: banananet}}\nspec:\n  subnet: 10.213.{third}.0/24\n  gateway: 10.213.{third}.1\n"),
    );
    env.write(
        "a.yaml",
        &common::server(
            "skywars",
            &format!("  network: banananet\n  ip: 10.213.{third}.10\n"),
        ),
    );
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let c = env.container("skywars").expect("container");
    let net = format!("dh_{}_banananet", env.instance);
    let ip = docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        &c.id,
    ]);
    assert_eq!(ip.trim(), format!("10.213.{third}.10"));
    assert_eq!(
        env.status_of("network", "banananet").expect("network")["phase"],
        "Ready"
    );
    // Removing everything removes the network dockhand created.
    env.remove("a.yaml");
    env.remove("net.yaml");
    let out = env.run("sync", &["--allow-empty", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        docker(&["network", "ls", "-q", "--filter", &format!("name=^{net}$")])
            .trim()
            .is_empty()
    );
}

#[test]
fn an_auto_created_network_is_removed_when_unused_and_a_foreign_one_is_kept() {
    let Some(env) = Env::new("net-auto") else {
        return;
    };
    let foreign = format!("{}-foreign", env.instance);
    docker(&["network", "create", &foreign]);
    env.write("a.yaml", &common::server("one", "  network: backstage\n"));
    env.write(
        "b.yaml",
        &common::server("two", &format!("  network: {foreign}\n")),
    );
    env.sync();
    let auto = format!("dh_{}_backstage", env.instance);
    let exists = |n: &str| {
        !docker(&["network", "ls", "-q", "--filter", &format!("name=^{n}$")])
            .trim()
            .is_empty()
    };
    assert!(exists(&auto), "the undeclared network was not created");
    env.remove("a.yaml");
    env.remove("b.yaml");
    env.write("c.yaml", &common::server("three", ""));
    env.sync();
    env.sync();
    assert!(!exists(&auto), "the auto-created network was not removed");
    assert!(
        exists(&foreign),
        "a network dockhand did not create was removed"
    );
    docker(&["network", "rm", &foreign]);
}

#[test]
fn a_network_spec_change_recreates_it_and_reattaches_its_containers() {
    let Some(env) = Env::new("net-recreate") else {
        return;
    };
    let third = 100 + (std::process::id() % 150);
    let net = |sub: u32| {
        format!("apiVersion: dockhand/v1\nkind: Network\nmetadata: {{name: lan}}\nspec:\n  subnet: 10.{sub}.{third}.0/24\n")
    };
    env.write("net.yaml", &net(214));
    env.write("a.yaml", &common::server("member", "  network: lan\n"));
    env.sync();
    let before = env.container("member").expect("container");
    env.write("net.yaml", &net(215));
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("recreate network"),
        "{}",
        text(&out)
    );
    let after = env.container("member").expect("container");
    assert_eq!(
        after.id, before.id,
        "the container is reattached, not recreated"
    );
    let name = format!("dh_{}_lan", env.instance);
    let ip = docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{name}\").IPAddress}}}}"),
        &after.id,
    ]);
    assert!(
        ip.trim().starts_with(&format!("10.215.{third}.")),
        "not reattached: {ip:?}"
    );
}

/// A tiny HTTP server in Perl (the PostgreSQL image has Perl, not busybox) answering the
/// contents of /tmp/answer.
/// No single quotes: the shell gets it in single quotes.
const PERL_HTTPD: &str = r#"use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { my $l = <$c>; open my $f, "<", "/tmp/answer"; my $a = join "", <$f>; print $c "HTTP/1.0 200 OK\r\nContent-Length: " . length($a) . "\r\n\r\n$a"; close $c }"#;

#[test]
fn servers_and_a_database_find_each_other_by_name_on_the_default_network() {
    let Some(env) = Env::new("net-names") else {
        return;
    };
    common::postgres_image();
    env.write(
        "db.yaml",
        &format!("apiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: store}}\nspec:\n  image: {}\n  port: 5923\n", common::POSTGRES_IMAGE),
    );
    // `api` logs into the database by name, then serves who it logged in as.
    let api_script = format!(
        "until psql \"$DATABASE_URL\" -tAc 'select current_user' > /tmp/answer; do sleep 1; done; exec perl -e '{PERL_HTTPD}'"
    );
    env.write(
        "api.yaml",
        &format!(
            "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: api}}\nspec:\n  image: {}\n  entrypoint: [sh, -c, {api_script:?}]\n  env:\n    DATABASE_URL: {{fromDatabase: store}}\n    PGHOST: {{fromDatabase: store, key: host}}\n    PGPORT: {{fromDatabase: store, key: port}}\n  aliases: [backend]\n  dependsOn: [{{kind: Database, name: store, condition: Healthy}}]\n",
            common::POSTGRES_IMAGE
        ),
    );
    env.write("web.yaml", &common::server("web", ""));
    env.write("worker.yaml", &common::server("worker", "  replicas: 2\n"));
    let out = env.run("sync", &["--timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));

    let api = env.container("api").expect("api");
    assert_eq!(
        docker(&["exec", &api.id, "sh", "-c", "echo $PGHOST:$PGPORT"]).trim(),
        "store:5432",
        "a database on a shared network is reached by name on its own port"
    );
    let web = env.container("web").expect("web");
    let fetched = common::eventually(Duration::from_secs(60), "web to fetch from api", || {
        let got = docker(&["exec", &web.id, "wget", "-qO-", "http://api:8080/"]);
        (got.trim() == "store").then_some(got)
    });
    assert_eq!(fetched.trim(), "store");
    let by_alias = docker(&["exec", &web.id, "wget", "-qO-", "http://backend:8080/"]);
    assert_eq!(by_alias.trim(), "store", "an alias answers too");

    // A replicated server's name resolves to every replica.
    let replicas: Vec<String> = ["worker", "worker.1"]
        .iter()
        .map(|n| {
            let c = env.container(n).expect("replica");
            let net = format!("dh_{}_default", env.instance);
            docker(&[
                "inspect",
                "-f",
                &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
                &c.id,
            ])
            .trim()
            .to_owned()
        })
        .collect();
    let lookup = docker(&["exec", &web.id, "nslookup", "worker"]);
    for ip in &replicas {
        assert!(
            !ip.is_empty() && lookup.contains(ip.as_str()),
            "{ip} not in {lookup}"
        );
    }

    // Nothing left: the default network goes with the last object.
    for f in ["db.yaml", "api.yaml", "web.yaml", "worker.yaml"] {
        env.remove(f);
    }
    let out = env.run("sync", &["--timeout", "60s", "--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out));
    let left = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("name=^dh_{}_default$", env.instance),
    ]);
    assert!(left.trim().is_empty(), "default network left behind");
}

#[test]
fn a_server_joins_several_networks_with_an_address_and_aliases_on_each() {
    let Some(env) = Env::new("net-multi") else {
        return;
    };
    let third = 100 + (std::process::id() % 150);
    env.write(
        "net.yaml",
        &format!("apiVersion: dockhand/v1\nkind: Network\nmetadata: {{name: back}}\nspec:\n  subnet: 10.216.{third}.0/24\n"),
    );
    env.write(
        "a.yaml",
        &common::server(
            "gateway",
            &format!("  networks:\n    - front\n    - {{name: back, ip: 10.216.{third}.7, aliases: [gw]}}\n"),
        ),
    );
    env.write("b.yaml", &common::server("client", "  networks: [back]\n"));
    env.write("c.yaml", &common::server("outsider", ""));
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let gw = env.container("gateway").expect("gateway");
    let nets = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}",
        &gw.id,
    ]);
    assert!(
        nets.contains(&format!("dh_{}_front=", env.instance)),
        "{nets}"
    );
    assert!(
        nets.contains(&format!("dh_{}_back=10.216.{third}.7", env.instance)),
        "{nets}"
    );
    let client = env.container("client").expect("client");
    let found = docker(&["exec", &client.id, "nslookup", "gw"]);
    assert!(found.contains(&format!("10.216.{third}.7")), "{found}");
    // `outsider` is on the default network only: it does not see `gateway` by name.
    let outsider = env.container("outsider").expect("outsider");
    let out = std::process::Command::new("docker")
        .args(["exec", &outsider.id, "nslookup", "client"])
        .output()
        .expect("docker exec");
    assert!(
        !out.status.success() || String::from_utf8_lossy(&out.stdout).contains("can't find"),
        "{}",
        text(&out)
    );
}

/// Engine networks named `name`, by id.
fn networks_named(name: &str) -> Vec<String> {
    docker(&["network", "ls", "-q", "--filter", &format!("name=^{name}$")])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn same_named_default_networks_left_by_a_killed_create_are_reduced_to_one() {
    let Some(env) = Env::new("net-dup") else {
        return;
    };
    let name = format!("dh_{}_default", env.instance);
    // Concurrent creates race past the engine's name check; that is how a create the engine
    // finished after its client was killed, and the next run's create, leave two.
    let instance = format!("dockhand.instance={}", env.instance);
    for _ in 0..5 {
        let racers: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new("docker")
                    .args(["network", "create", "--label", "dockhand.managed=true"])
                    .args(["--label", &instance, "--label", "dockhand.spec-hash=auto"])
                    .arg(&name)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("docker network create")
            })
            .collect();
        for mut r in racers {
            let _ = r.wait();
        }
        if networks_named(&name).len() > 1 {
            break;
        }
    }
    assert!(
        networks_named(&name).len() > 1,
        "no duplicate to start from"
    );
    env.write("a.yaml", &common::server("web", ""));
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("duplicate"), "{}", text(&out));
    assert_eq!(networks_named(&name).len(), 1);
    assert!(env.container("web").expect("container").running());
}
