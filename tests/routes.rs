//! Routes (TCP and UDP through `dockhand up`) and StartFirst updates behind them, against the real
//! engine. Clients only ever connect to 127.0.0.x; the proxy reaches this run's own containers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{docker, eventually, free_port, http, text, Controller, Env, IMAGE};

const WAIT: Duration = Duration::from_secs(40);

/// An HTTP server (busybox httpd) whose page says `page`, ready once it listens.
fn web(name: &str, page: &str, extra: &str) -> String {
    format!(
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: {IMAGE}\n  pullPolicy: Never\n  command: [\"sh\", \"-c\", \"mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n  healthCheck: {{tcp: {{port: 8080}}, interval: 300ms, retries: 1}}\n  stopGracePeriod: 1s\n{extra}"
    )
}

fn route(name: &str, listen: SocketAddr, server: &str, port: u16, extra: &str) -> String {
    format!(
        "apiVersion: dockhand/v1\nkind: Route\nmetadata: {{name: {name}}}\nspec:\n  protocol: tcp\n  listen: '{listen}'\n  to: {{server: {server}, port: {port}}}\n{extra}"
    )
}

/// One HTTP GET through `addr`, from `source`; the body, or why it failed.
fn get(addr: SocketAddr, source: Option<&str>) -> Result<String, String> {
    let stream = match source {
        Some(src) => {
            let ip: std::net::IpAddr = src.parse().map_err(|_| format!("bad source {src}"))?;
            BoundClient(SocketAddr::new(ip, 0))
                .connect(addr)
                .map_err(|e| e.to_string())?
        }
        None => {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?
        }
    };
    let mut stream = stream;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    stream
        .read_to_string(&mut body)
        .map_err(|e| e.to_string())?;
    if !body.starts_with("HTTP/1.0 200") && !body.starts_with("HTTP/1.1 200") {
        return Err(format!("bad response: {body}"));
    }
    Ok(body
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// A TCP client bound to a chosen loopback source address.
struct BoundClient(std::net::SocketAddr);

impl BoundClient {
    fn connect(&self, to: SocketAddr) -> std::io::Result<TcpStream> {
        // std has no bind-before-connect; tokio's TcpSocket has, on a throwaway runtime.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let std_stream = rt.block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(self.0)?;
            let stream = s.connect(to).await?;
            stream.into_std()
        })?;
        std_stream.set_nonblocking(false)?;
        Ok(std_stream)
    }
}

/// One of a route's series on the controller's `/metrics`.
fn route_metric(up: &Controller, series: &str, route: &str) -> Option<u64> {
    let text = http(
        "GET",
        &format!("{}/metrics", up.api_url()),
        Some(&up.api_token()),
        None,
    )
    .text;
    let prefix = format!("{series}{{route=\"{route}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

/// The UDP echo image: busybox plus a static echo server (busybox nc has no UDP).
fn udp_echo_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/udp-echo.c");
        let out = std::process::Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(dir.path().join("udp-echo"))
            .arg(&src)
            .output()
            .expect("run gcc");
        assert!(
            out.status.success(),
            "gcc -static failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {IMAGE}\nCOPY udp-echo /bin/udp-echo\nCMD [\"udp-echo\", \"5520\"]\n"),
        )
        .expect("Dockerfile");
        let out = std::process::Command::new("docker")
            .args(["build", "-q", "-t", "dockhand/udp-echo:local"])
            .arg(dir.path())
            .output()
            .expect("docker build");
        assert!(
            out.status.success(),
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    "dockhand/udp-echo:local"
}

#[test]
fn tcp_through_a_route_reaches_an_http_server_and_follows_a_recreated_backend() {
    let Some(env) = Env::new("route-tcp") else {
        return;
    };
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    env.write("web.yaml", &web("web", "first", ""));
    env.write("route.yaml", &route("front", listen, "web", 8080, ""));
    let mut up = env.up(&["--resync", "1h"]);
    let body = eventually(WAIT, "the page through the route", || {
        get(listen, None).ok()
    });
    assert_eq!(body, "first");
    let s = eventually(WAIT, "route status", || {
        env.status_of("route", "front")
            .filter(|s| s["phase"] == "Ready")
    });
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("backends web=")),
        "{s}"
    );
    // The same counters, as Prometheus series.
    assert_eq!(
        route_metric(&up, "dockhand_route_listening", "front"),
        Some(1)
    );
    assert_eq!(
        route_metric(&up, "dockhand_route_backends", "front"),
        Some(1)
    );
    assert!(
        route_metric(&up, "dockhand_route_received_bytes_total", "front").is_some_and(|n| n > 0)
    );
    assert!(route_metric(&up, "dockhand_route_sent_bytes_total", "front").is_some_and(|n| n > 0));

    // The backend is recreated (new spec): the same listener reaches the new container.
    env.write("web.yaml", &web("web", "second", ""));
    eventually(WAIT, "the new page through the same route", || {
        get(listen, None).ok().filter(|b| b == "second")
    });

    // A removed route's listener is closed.
    env.remove("route.yaml");
    eventually(WAIT, "the listener to close", || {
        TcpStream::connect(listen).is_err().then_some(())
    });
    up.stop();
}

#[test]
fn a_route_to_a_replicated_server_spreads_connections_over_its_replicas() {
    let Some(env) = Env::new("route-replicas") else {
        return;
    };
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    // Each replica's page is its own hostname (the container's short id).
    env.write("web.yaml", &web("web", "$(hostname)", "  replicas: 3\n"));
    env.write("route.yaml", &route("front", listen, "web", 8080, ""));
    let mut up = env.up(&["--resync", "1h"]);
    eventually(WAIT, "three backends", || {
        route_metric(&up, "dockhand_route_backends", "front").filter(|n| *n == 3)
    });
    let pages: std::collections::BTreeSet<String> = (0..9)
        .map(|_| get(listen, None).expect("a page through the route"))
        .collect();
    assert_eq!(pages.len(), 3, "every replica answers: {pages:?}");
    up.stop();
}

#[test]
fn a_route_without_a_ready_backend_refuses_at_once() {
    let Some(env) = Env::new("route-refuse") else {
        return;
    };
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    env.write("route.yaml", &route("front", listen, "ghost", 8080, ""));
    env.write("other.yaml", &web("other", "x", ""));
    let mut up = env.up(&["--resync", "1h"]);
    eventually(WAIT, "the listener", || {
        env.status_of("route", "front")
            .filter(|s| s["phase"] == "Running")
    });
    let started = Instant::now();
    assert!(get(listen, None).is_err());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not refused at once"
    );
    assert_eq!(
        route_metric(&up, "dockhand_route_backends", "front"),
        Some(0)
    );
    assert!(route_metric(&up, "dockhand_route_dropped_total", "front").is_some_and(|n| n >= 1));
    up.stop();
}

#[test]
fn rules_send_clients_from_different_sources_to_different_backends() {
    let Some(env) = Env::new("route-rules") else {
        return;
    };
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    env.write("a.yaml", &web("lobby", "lobby", ""));
    env.write("b.yaml", &web("skywars", "skywars", ""));
    env.write(
        "route.yaml",
        &route(
            "game",
            listen,
            "lobby",
            8080,
            "  rules:\n    - {source: 127.0.0.2, to: {server: skywars, port: 8080}}\n",
        ),
    );
    let mut up = env.up(&["--resync", "1h"]);
    eventually(WAIT, "both backends", || {
        env.status_of("route", "game").filter(|s| {
            s["message"]
                .as_str()
                .is_some_and(|m| m.contains("skywars=") && m.contains("lobby="))
        })
    });
    assert_eq!(get(listen, Some("127.0.0.1")).expect("from .1"), "lobby");
    assert_eq!(get(listen, Some("127.0.0.2")).expect("from .2"), "skywars");
    up.stop();
}

/// Route `game` to server `lobby`, with server `skywars` beside it, under `up`; returns once
/// the lobby answers through the route.
fn game_in_front_of_lobby_and_skywars(env: &Env) -> (SocketAddr, Controller) {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    env.write("a.yaml", &web("lobby", "lobby", ""));
    env.write("b.yaml", &web("skywars", "skywars", ""));
    env.write("route.yaml", &route("game", listen, "lobby", 8080, ""));
    let up = env.up(&["--resync", "1h"]);
    eventually(WAIT, "lobby behind the route", || {
        get(listen, Some("127.0.0.2")).ok().filter(|b| b == "lobby")
    });
    (listen, up)
}

#[test]
fn per_client_routes_set_through_the_api_apply_live() {
    let Some(env) = Env::new("route-clients") else {
        return;
    };
    let (listen, mut up) = game_in_front_of_lobby_and_skywars(&env);
    let api = format!("{}/api/v1/routes/game/clients", up.api_url());
    // Peel's set: this client address now goes to skywars; others still reach the lobby.
    let body = r#"{"server": "skywars", "port": 8080}"#;
    let r = common::http(
        "PUT",
        &format!("{api}/127.0.0.2"),
        Some(&env.api_token()),
        Some(body),
    );
    assert_eq!(r.status, 200, "{r:?}");
    eventually(WAIT, "127.0.0.2 sent to skywars", || {
        get(listen, Some("127.0.0.2"))
            .ok()
            .filter(|b| b == "skywars")
    });
    assert_eq!(get(listen, Some("127.0.0.1")).expect("from .1"), "lobby");
    // List and read.
    let r = common::http("GET", &api, Some(&env.api_token()), None);
    assert_eq!(r.body[0]["client"], "127.0.0.2", "{r:?}");
    assert_eq!(r.body[0]["server"], "skywars", "{r:?}");
    let r = common::http(
        "GET",
        &format!("{api}/127.0.0.2"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!((r.status, r.body["port"].as_u64()), (200, Some(8080)));
    assert_eq!(
        common::http(
            "GET",
            &format!("{api}/127.0.0.9"),
            Some(&env.api_token()),
            None
        )
        .status,
        404
    );
    // Bad input is refused with a reason.
    let r = common::http(
        "PUT",
        &format!("{api}/not-an-ip"),
        Some(&env.api_token()),
        Some(body),
    );
    assert_eq!(r.status, 400, "{r:?}");
    let r = common::http(
        "PUT",
        &format!("{api}/127.0.0.3"),
        Some(&env.api_token()),
        Some(r#"{"server": "x"}"#),
    );
    assert_eq!(r.status, 400, "{r:?}");
    let missing = api.replace("/game/", "/nope/");
    assert_eq!(
        common::http(
            "PUT",
            &format!("{missing}/127.0.0.3"),
            Some(&env.api_token()),
            Some(body)
        )
        .status,
        404
    );
    // Peel's delete: back to the route's own target.
    let r = common::http(
        "DELETE",
        &format!("{api}/127.0.0.2"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    eventually(WAIT, "127.0.0.2 back at the lobby", || {
        get(listen, Some("127.0.0.2")).ok().filter(|b| b == "lobby")
    });
    assert_eq!(
        common::http(
            "DELETE",
            &format!("{api}/127.0.0.2"),
            Some(&env.api_token()),
            None
        )
        .status,
        404
    );
    up.stop();
}

#[test]
fn a_client_network_can_be_sent_to_a_raw_address_and_narrower_rules_still_win() {
    let Some(env) = Env::new("route-clients-cidr") else {
        return;
    };
    let (listen, mut up) = game_in_front_of_lobby_and_skywars(&env);
    let skywars = env.container("skywars").expect("skywars runs");
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        &skywars.id,
    ]);
    let ip = ip.split_whitespace().next().expect("an address").to_owned();
    // 127.0.0.0/30 (.0 to .3) goes to skywars by its address, as Peel takes raw addresses.
    let out = env.run(
        "clients",
        &["set", "game", "127.0.0.0/30", &format!("{ip}:8080")],
    );
    assert!(out.status.success(), "{}", text(&out));
    eventually(WAIT, "127.0.0.2 sent to skywars", || {
        get(listen, Some("127.0.0.2"))
            .ok()
            .filter(|b| b == "skywars")
    });
    assert_eq!(get(listen, Some("127.0.0.5")).expect("from .5"), "lobby");
    // A single address inside the network is more specific: it wins.
    let out = env.run("clients", &["set", "game", "127.0.0.3", "lobby:8080"]);
    assert!(out.status.success(), "{}", text(&out));
    eventually(WAIT, "127.0.0.3 at the lobby", || {
        get(listen, Some("127.0.0.3")).ok().filter(|b| b == "lobby")
    });
    assert_eq!(get(listen, Some("127.0.0.2")).expect("from .2"), "skywars");
    // Listed and deleted by the network, through the API as well.
    let api = up.api_url();
    let out = env.run("clients", &["list", "game", "--server", &api]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("127.0.0.0/30"),
        "{}",
        text(&out)
    );
    let out = env.run(
        "clients",
        &["delete", "game", "127.0.0.0/30", "--server", &api],
    );
    assert!(out.status.success(), "{}", text(&out));
    eventually(WAIT, "127.0.0.2 back at the lobby", || {
        get(listen, Some("127.0.0.2")).ok().filter(|b| b == "lobby")
    });
    // Loopback is no target: that would open the host's own services.
    let out = env.run("clients", &["set", "game", "127.0.0.9", "127.0.0.1:22"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("loopback"), "{}", text(&out));
    up.stop();
}

#[test]
fn per_client_routes_set_with_the_cli_on_the_state_file_apply_live() {
    let Some(env) = Env::new("route-clients-cli") else {
        return;
    };
    let (listen, mut up) = game_in_front_of_lobby_and_skywars(&env);
    let stdout = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();

    // Written to the state file by another process: the controller notices by itself.
    let out = env.run("clients", &["set", "game", "127.0.0.2", "skywars:8080"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), "route/game: 127.0.0.2 -> skywars:8080\n");
    eventually(WAIT, "127.0.0.2 sent to skywars", || {
        get(listen, Some("127.0.0.2"))
            .ok()
            .filter(|b| b == "skywars")
    });
    assert_eq!(get(listen, Some("127.0.0.1")).expect("from .1"), "lobby");

    // The same table, listed through the controller's API.
    let api = up.api_url();
    let out = env.run("clients", &["list", "game", "--server", &api]);
    assert!(out.status.success(), "{}", text(&out));
    let table = stdout(&out);
    assert!(table.starts_with("CLIENT"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("127.0.0.2") && l.contains("skywars:8080")),
        "{table}"
    );

    // Bad input and unknown routes: exit 1 with the reason.
    for (args, why) in [
        (
            &["set", "game", "not-an-ip", "skywars:8080"][..],
            "invalid client address",
        ),
        (
            &["set", "game", "127.0.0.3", "skywars"][..],
            "expected SERVER:PORT",
        ),
        (
            &["set", "nope", "127.0.0.3", "skywars:8080"][..],
            "route/nope not found",
        ),
        (
            &["delete", "game", "127.0.0.9"][..],
            "has no route for client",
        ),
        (
            &["set", "game", "127.0.0.3", "nosuch:8080"][..],
            "server/nosuch not found",
        ),
        (
            &["set", "game", "127.0.0.3", "nosuch:8080", "--server", &api][..],
            "server/nosuch not found",
        ),
    ] {
        let out = env.run("clients", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{args:?}: {}",
            text(&out)
        );
    }

    // Deleted through the API from the CLI: back to the route's own target.
    let out = env.run(
        "clients",
        &["delete", "game", "127.0.0.2", "--server", &api],
    );
    assert!(out.status.success(), "{}", text(&out));
    eventually(WAIT, "127.0.0.2 back at the lobby", || {
        get(listen, Some("127.0.0.2")).ok().filter(|b| b == "lobby")
    });
    let out = env.run("clients", &["list", "game"]);
    assert_eq!(stdout(&out), "no client routes\n", "{}", text(&out));
    up.stop();
}

#[test]
fn udp_through_a_route_gets_replies() {
    let Some(env) = Env::new("route-udp") else {
        return;
    };
    let image = udp_echo_image();
    let port = free_port();
    env.write(
        "echo.yaml",
        &format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: echo}}\nspec:\n  image: {image}\n  pullPolicy: Never\n  stopGracePeriod: 1s\n"),
    );
    env.write(
        "route.yaml",
        &format!("apiVersion: dockhand/v1\nkind: Route\nmetadata: {{name: game}}\nspec:\n  protocol: udp\n  listen: '127.0.0.1:{port}'\n  to: {{server: echo, port: 5520}}\n  udpIdleTimeout: 5s\n"),
    );
    let mut up = env.up(&["--resync", "1h"]);
    eventually(WAIT, "the route", || {
        env.status_of("route", "game")
            .filter(|s| s["phase"] == "Ready")
    });
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let reply = eventually(WAIT, "an echo", || {
        client.send_to(b"ping", ("127.0.0.1", port)).ok()?;
        let mut buf = [0u8; 64];
        let (n, _) = client.recv_from(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    });
    assert_eq!(reply, b"ping");
    let s = eventually(WAIT, "counted bytes", || {
        env.status_of("route", "game").filter(|s| {
            s["message"]
                .as_str()
                .is_some_and(|m| !m.contains(" 0 bytes in"))
        })
    });
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("active sessions")),
        "{s}"
    );
    up.stop();
}

#[test]
fn a_start_first_update_under_a_loop_of_requests_fails_none() {
    let Some(env) = Env::new("startfirst") else {
        return;
    };
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let spec = |page: &str| web("web", page, "  update: {order: StartFirst}\n");
    env.write("web.yaml", &spec("v1"));
    env.write("route.yaml", &route("front", listen, "web", 8080, ""));
    let mut up = env.up(&["--resync", "1h"]);
    eventually(WAIT, "v1 through the route", || {
        get(listen, None).ok().filter(|b| b == "v1")
    });

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed, mut seen_v2) = (0u32, Vec::new(), false);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                match get(listen, None) {
                    Ok(b) => {
                        ok += 1;
                        seen_v2 |= b == "v2";
                    }
                    Err(e) => failed.push(e),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed, seen_v2)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    env.write("web.yaml", &spec("v2"));
    eventually(WAIT, "v2 alone", || {
        let cs = env.containers();
        (cs.len() == 1 && get(listen, None).ok().as_deref() == Some("v2")).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed, seen_v2) = load.join().expect("load thread");
    assert!(seen_v2 && ok > 10, "too few requests: {ok}");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        failed
    );
    up.stop();
}
