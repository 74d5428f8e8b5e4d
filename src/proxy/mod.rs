//! `kind: Route`: the data plane, inside `dockhand up`.
//!
//! Each route has one listener task. Backends (the current address of each target server's
//! ready container) live in shared state the reconcile pass updates, so a recreated container
//! gets new connections and datagrams without the listener restarting.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::manifest::fields::Protocol;
use crate::manifest::network::RouteSpec;

mod splice;

/// One address a server is reached at: a container's own, at the route's target port, or a
/// swarm node's that publishes the target port on a port of its own (`ports`: container port →
/// published port; only those ports are reachable there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub ports: Vec<(u16, u16)>,
}

impl Backend {
    /// Where a connection to container port `port` goes, if this backend reaches it.
    fn addr(&self, port: u16) -> Option<SocketAddr> {
        if self.ports.is_empty() {
            return Some(SocketAddr::from((self.ip, port)));
        }
        let (_, host) = self.ports.iter().find(|(c, _)| *c == port)?;
        Some(SocketAddr::from((self.ip, *host)))
    }
}

impl From<Ipv4Addr> for Backend {
    fn from(ip: Ipv4Addr) -> Self {
        Backend {
            ip,
            ports: Vec::new(),
        }
    }
}

/// Counters and routing state one listener shares with the reconciler.
#[derive(Default)]
struct Shared {
    spec: RwLock<Option<RouteSpec>>,
    /// Server name → addresses of its ready containers (one per ready replica).
    backends: RwLock<HashMap<String, Vec<Backend>>>,
    /// Turns through a replicated server's addresses, one connection or session at a time.
    next: std::sync::atomic::AtomicUsize,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    active: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
        lock.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where a client's traffic goes now, or `None` when its target has no ready container.
    fn backend_for(&self, client: IpAddr) -> Option<SocketAddr> {
        let client = match client {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        let spec = Self::read(&self.spec);
        let target = spec.as_ref()?.target_for(client);
        let backends = Self::read(&self.backends);
        let ips = backends
            .get(&target.server.0)
            .filter(|ips| !ips.is_empty())?;
        ips[self.next.fetch_add(1, Ordering::Relaxed) % ips.len()].addr(target.port.0)
    }
}

struct Listener {
    key: (SocketAddr, Protocol),
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    /// Why it is not listening (the address is taken, say).
    error: Option<String>,
}

impl Listener {
    /// Its counters now, with the backends the last sync gave it.
    fn state(&self) -> RouteState {
        let mut backends: Vec<String> = Shared::read(&self.shared.backends)
            .iter()
            .flat_map(|(s, ips)| ips.iter().map(move |b| format!("{s}={}", b.ip)))
            .collect();
        backends.sort();
        RouteState {
            listening: self.error.clone().map_or(Ok(()), Err),
            backends,
            active: self.shared.active.load(Ordering::Relaxed),
            bytes_in: self.shared.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.shared.bytes_out.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            unreachable: Vec::new(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// What a route is doing, for its status.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteState {
    pub listening: Result<(), String>,
    /// `server=address` per target that has a ready container.
    pub backends: Vec<String>,
    pub active: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped: u64,
    /// Targets it cannot reach, and why (a swarm service that does not publish the port).
    pub unreachable: Vec<String>,
}

impl RouteState {
    pub fn message(&self, spec: &RouteSpec) -> String {
        let backends = if self.backends.is_empty() {
            "none ready".to_owned()
        } else {
            self.backends.join(", ")
        };
        let sessions = if spec.protocol == Protocol::Udp {
            "sessions"
        } else {
            "connections"
        };
        let mut message = format!(
            "{} {}: backends {backends}; {} active {sessions}; {} bytes in, {} out; {} dropped",
            spec.protocol.as_str(),
            spec.listen.0,
            self.active,
            self.bytes_in,
            self.bytes_out,
            self.dropped
        );
        for why in &self.unreachable {
            message.push_str("; ");
            message.push_str(why);
        }
        message
    }
}

/// Every route's listener.
#[derive(Default)]
pub struct Proxy {
    listeners: Mutex<HashMap<String, Listener>>,
}

impl Proxy {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes the listeners match `routes` (starting, keeping or closing them) and points them at
    /// `backends` (server name → its ready containers' addresses). Returns each route's state.
    pub async fn sync(
        &self,
        routes: &[(String, RouteSpec)],
        backends: &HashMap<String, Vec<Backend>>,
    ) -> HashMap<String, RouteState> {
        // Which listeners must be (re)started, decided under the lock, bound outside it.
        let mut to_start = Vec::new();
        {
            let mut listeners = self
                .listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            listeners.retain(|name, _| routes.iter().any(|(n, _)| n == name));
            for (name, spec) in routes {
                let key = (spec.listen.0, spec.protocol);
                let keep = listeners
                    .get(name)
                    .is_some_and(|l| l.key == key && l.error.is_none());
                if !keep {
                    listeners.remove(name);
                    to_start.push((name.clone(), spec.clone()));
                }
            }
        }
        for (name, spec) in to_start {
            let shared = Arc::new(Shared::default());
            let key = (spec.listen.0, spec.protocol);
            let (task, error) = match start(&spec, shared.clone()).await {
                Ok(t) => (Some(t), None),
                Err(e) => (
                    None,
                    Some(format!(
                        "cannot listen on {} ({}): {e}",
                        spec.listen.0,
                        spec.protocol.as_str()
                    )),
                ),
            };
            let mut listeners = self
                .listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            listeners.insert(
                name,
                Listener {
                    key,
                    shared,
                    task,
                    error,
                },
            );
        }
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = HashMap::new();
        for (name, spec) in routes {
            let Some(l) = listeners.get(name) else {
                continue;
            };
            *l.shared
                .spec
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(spec.clone());
            let targets: std::collections::BTreeSet<&str> =
                spec.targets().map(|t| t.server.0.as_str()).collect();
            let mine: HashMap<String, Vec<Backend>> = targets
                .iter()
                .filter_map(|t| Some((t.to_string(), backends.get(*t)?.clone())))
                .collect();
            *l.shared
                .backends
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = mine;
            out.insert(name.clone(), l.state());
        }
        out
    }

    /// Every route's state now, by name (for metrics between passes).
    pub fn states(&self) -> Vec<(String, RouteState)> {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<_> = listeners
            .iter()
            .map(|(name, l)| (name.clone(), l.state()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

async fn start(spec: &RouteSpec, shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    match spec.protocol {
        Protocol::Tcp => {
            let listener = TcpListener::bind(spec.listen.0).await?;
            Ok(tokio::spawn(serve_tcp(listener, shared)))
        }
        Protocol::Udp => {
            let socket = Arc::new(UdpSocket::bind(spec.listen.0).await?);
            Ok(tokio::spawn(serve_udp(
                socket,
                shared,
                spec.udp_idle_timeout,
            )))
        }
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((inbound, peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let upstream = match shared.backend_for(peer.ip()) {
                Some(addr) => TcpStream::connect(addr).await.ok(),
                None => None,
            };
            let Some(upstream) = upstream else {
                // Refused at once: a reset rather than a connection that hangs.
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                // A zero linger resets the connection on drop; it never blocks (only a non-zero
                // linger does, which is why tokio deprecates the call).
                #[allow(deprecated)]
                let _ = inbound.set_linger(Some(Duration::ZERO));
                return;
            };
            shared.active.fetch_add(1, Ordering::Relaxed);
            if let Ok((to_backend, to_client)) = splice::relay(&inbound, &upstream).await {
                shared.bytes_in.fetch_add(to_backend, Ordering::Relaxed);
                shared.bytes_out.fetch_add(to_client, Ordering::Relaxed);
            }
            shared.active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One client's UDP session: its own upstream socket, so replies find the right client.
struct Session {
    backend: SocketAddr,
    upstream: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>, idle: Duration) {
    let sessions: Arc<Mutex<HashMap<SocketAddr, Session>>> = Arc::default();
    let started = tokio::time::Instant::now();
    let now_ms = move || started.elapsed().as_millis() as u64;
    // Idle sessions are swept a few times per timeout, rather than each datagram arming a timer;
    // a route with no session is not woken at all.
    let mut sweep =
        tokio::time::interval((idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 65_536];
    let mut live = false;
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = sweep.tick(), if live => {
                let now = now_ms();
                let idle_ms = idle.as_millis() as u64;
                let mut map = sessions
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                map.retain(|_, s| {
                    let keep = now.saturating_sub(s.last.load(Ordering::Relaxed)) < idle_ms;
                    if !keep {
                        s.task.abort();
                        shared.active.fetch_sub(1, Ordering::Relaxed);
                    }
                    keep
                });
                live = !map.is_empty();
                continue;
            }
        };
        let Ok((n, client)) = received else {
            continue;
        };
        let Some(backend) = shared.backend_for(client.ip()) else {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let existing = {
            let mut map = sessions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match map.get(&client) {
                // A recreated backend has a new address: start over with it.
                Some(s) if s.backend != backend => {
                    if let Some(old) = map.remove(&client) {
                        old.task.abort();
                        shared.active.fetch_sub(1, Ordering::Relaxed);
                    }
                    None
                }
                Some(s) => Some((s.upstream.clone(), s.last.clone())),
                None => None,
            }
        };
        let (upstream, last) = match existing {
            Some(found) => found,
            None => {
                let Ok(up) = UdpSocket::bind(("0.0.0.0", 0)).await else {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if up.connect(backend).await.is_err() {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let up = Arc::new(up);
                let last = Arc::new(AtomicU64::new(now_ms()));
                let task = tokio::spawn(relay_replies(
                    up.clone(),
                    socket.clone(),
                    client,
                    shared.clone(),
                    sessions.clone(),
                    last.clone(),
                    now_ms,
                ));
                shared.active.fetch_add(1, Ordering::Relaxed);
                live = true;
                let mut map = sessions
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                map.insert(
                    client,
                    Session {
                        backend,
                        upstream: up.clone(),
                        last: last.clone(),
                        task,
                    },
                );
                (up, last)
            }
        };
        last.store(now_ms(), Ordering::Relaxed);
        if upstream.send(&buf[..n]).await.is_ok() {
            shared.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends the backend's replies to the client, until the sweep ends the idle session.
async fn relay_replies(
    upstream: Arc<UdpSocket>,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    shared: Arc<Shared>,
    sessions: Arc<Mutex<HashMap<SocketAddr, Session>>>,
    last: Arc<AtomicU64>,
    now_ms: impl Fn() -> u64,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(n) => {
                last.store(now_ms(), Ordering::Relaxed);
                if socket.send_to(&buf[..n], client).await.is_ok() {
                    shared.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            // A backend not listening yet (ICMP port unreachable) may be soon.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(_) => break,
        }
    }
    let removed = sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&client)
        .is_some();
    if removed {
        shared.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_backend_reaches_only_the_ports_it_publishes() {
        let node = Backend {
            ip: Ipv4Addr::new(10, 0, 0, 12),
            ports: vec![(8080, 18181)],
        };
        assert_eq!(node.addr(8080), "10.0.0.12:18181".parse().ok());
        assert_eq!(node.addr(9090), None);
        let container = Backend::from(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(container.addr(9090), "172.17.0.2:9090".parse().ok());
    }
    use crate::manifest::fields::ContainerPort;
    use crate::manifest::network::{ListenAddr, Target};
    use crate::manifest::Name;

    fn spec(protocol: Protocol, listen: SocketAddr, port: u16) -> RouteSpec {
        RouteSpec {
            protocol,
            listen: ListenAddr(listen),
            to: Target {
                server: Name("echo".into()),
                port: ContainerPort(port),
            },
            rules: Vec::new(),
            udp_idle_timeout: Duration::from_millis(300),
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port())
    }

    #[tokio::test]
    async fn tcp_is_spliced_and_refused_without_a_backend() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let echo_port = echo.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let proxy = Proxy::new();
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let routes = vec![("r".to_owned(), spec(Protocol::Tcp, listen, echo_port))];
        // No backend: refused at once.
        let state = proxy.sync(&routes, &HashMap::new()).await;
        assert_eq!(state["r"].listening, Ok(()));
        let mut c = TcpStream::connect(listen).await.expect("connect");
        let mut buf = [0u8; 4];
        assert!(
            matches!(c.read(&mut buf).await, Ok(0) | Err(_)),
            "must be closed at once"
        );
        // With a backend: bytes go through and are counted.
        let backends = HashMap::from([("echo".to_owned(), vec![Ipv4Addr::LOCALHOST.into()])]);
        proxy.sync(&routes, &backends).await;
        let mut c = TcpStream::connect(listen).await.expect("connect");
        c.write_all(b"ping").await.expect("write");
        c.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        drop(c);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let state = proxy.sync(&routes, &backends).await;
        assert_eq!(
            (
                state["r"].bytes_in,
                state["r"].bytes_out,
                state["r"].dropped
            ),
            (4, 4, 1)
        );
        // Removing the route closes its listener.
        proxy.sync(&[], &backends).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            TcpStream::connect(listen).await.is_err(),
            "listener still open"
        );
    }

    #[tokio::test]
    async fn udp_sessions_carry_replies_back_and_expire() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let echo_port = echo.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let proxy = Proxy::new();
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let routes = vec![("u".to_owned(), spec(Protocol::Udp, listen, echo_port))];
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        // No backend: dropped and counted.
        proxy.sync(&routes, &HashMap::new()).await;
        client.send_to(b"lost", listen).await.expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(proxy.sync(&routes, &HashMap::new()).await["u"].dropped, 1);

        let backends = HashMap::from([("echo".to_owned(), vec![Ipv4Addr::LOCALHOST.into()])]);
        proxy.sync(&routes, &backends).await;
        client.send_to(b"hello", listen).await.expect("send");
        let mut buf = [0u8; 16];
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .expect("a reply")
            .expect("recv");
        assert_eq!((&buf[..n], from), (&b"hello"[..], listen));
        assert_eq!(proxy.sync(&routes, &backends).await["u"].active, 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            proxy.sync(&routes, &backends).await["u"].active,
            0,
            "idle session expires"
        );
    }

    #[tokio::test]
    async fn a_taken_listen_address_is_reported() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let proxy = Proxy::new();
        let state = proxy
            .sync(
                &[("r".to_owned(), spec(Protocol::Tcp, addr, 1))],
                &HashMap::new(),
            )
            .await;
        assert!(state["r"]
            .listening
            .as_ref()
            .is_err_and(|e| e.contains("cannot listen")));
    }
}
