//! An engine that fails on demand, for the tests of what dockhand does when the engine does.

use std::path::PathBuf;
use std::time::Duration;

/// A stand-in for the engine's socket that a test can cut and restore, to take the engine away
/// from dockhand without stopping the real one (other tests share it).
pub struct FlakyEngine {
    pub path: PathBuf,
    running: Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
}

impl FlakyEngine {
    /// A proxy at `path`, not yet accepting connections.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            running: None,
            conns: Default::default(),
        }
    }

    fn upstream() -> PathBuf {
        match std::env::var("DOCKER_HOST") {
            Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
            _ => PathBuf::from("/var/run/docker.sock"),
        }
    }

    /// A fresh non-blocking listener at `path`, and the flag that stops its thread.
    fn listen(
        &self,
    ) -> (
        std::os::unix::net::UnixListener,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let _ = std::fs::remove_file(&self.path);
        let listener =
            std::os::unix::net::UnixListener::bind(&self.path).expect("bind proxy socket");
        listener.set_nonblocking(true).expect("nonblocking");
        (listener, Default::default())
    }

    /// Starts forwarding connections to the real engine.
    pub fn restore(&mut self) {
        use std::io::ErrorKind;
        use std::os::unix::net::UnixStream;
        let (listener, stop) = self.listen();
        let (stop2, conns) = (stop.clone(), self.conns.clone());
        let handle = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = UnixStream::connect(Self::upstream()) else {
                            continue;
                        };
                        let mut list = conns.lock().expect("lock");
                        for s in [&client, &server] {
                            if let Ok(c) = s.try_clone() {
                                list.push(c);
                            }
                        }
                        for (mut from, mut to) in [
                            (
                                client.try_clone().expect("clone"),
                                server.try_clone().expect("clone"),
                            ),
                            (server, client),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
        });
        self.running = Some((stop, handle));
    }

    /// Accepts connections and never answers, as a wedged engine does.
    pub fn hang(&mut self) {
        use std::io::ErrorKind;
        self.cut();
        let (listener, stop) = self.listen();
        let (stop2, conns) = (stop.clone(), self.conns.clone());
        let handle = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => conns.lock().expect("lock").push(client),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
        });
        self.running = Some((stop, handle));
    }

    /// Stops accepting and breaks every open connection, as an engine going away does.
    pub fn cut(&mut self) {
        if let Some((stop, handle)) = self.running.take() {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = handle.join();
        }
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for FlakyEngine {
    fn drop(&mut self) {
        self.cut();
    }
}
