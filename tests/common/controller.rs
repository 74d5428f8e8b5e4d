//! A `dockhand up` process under test, stopped (and its containers removed) on drop.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use super::*;

/// A running `dockhand up`; stopped with SIGTERM when dropped.
pub struct Controller {
    pub(super) child: Option<Child>,
    pub log: PathBuf,
}

impl Controller {
    /// Sends SIGTERM and waits; returns the exit status and how long stopping took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("controller running");
        let started = Instant::now();
        terminate(&child);
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "dockhand up did not stop within 30s of SIGTERM:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The base URL of this controller's API, once it logged it (`http://127.0.0.1:PORT`).
    pub fn api_url(&self) -> String {
        eventually(Duration::from_secs(20), "the api to listen", || {
            let out = self.output();
            let at = out.find("api listening on http://")? + "api listening on ".len();
            let url: String = out[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
                .collect();
            Some(url)
        })
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("controller running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&c);
            let _ = c.wait();
        }
    }
}

/// Sends SIGTERM, as a service manager or Ctrl-C would.
pub fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill only sends a signal to our own child process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}
