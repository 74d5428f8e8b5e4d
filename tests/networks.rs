//! Networks against the real engine: static addresses, networks dockhand creates and removes
//! (and the foreign ones it leaves alone), and a network recreated under its containers.

mod common;

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
