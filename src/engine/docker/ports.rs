//! A host port the engine could not publish: which one, and who holds it. The engine's own
//! message ("driver failed programming external connectivity … bind: address already in use")
//! names neither the holder nor what to do.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;

/// The host port (and protocol) of an engine error that says the port is taken.
pub fn conflict(message: &str) -> Option<(u16, &'static str)> {
    let taken =
        message.contains("address already in use") || message.contains("port is already allocated");
    if !taken {
        return None;
    }
    // `listen tcp4 0.0.0.0:8080: bind`, `listen udp 0.0.0.0:53`, `Bind for 0.0.0.0:8080 failed`.
    let udp = message.contains("listen udp");
    let port = message
        .split(|c: char| c.is_whitespace())
        .filter_map(|w| w.trim_end_matches(':').rsplit_once(':'))
        .find_map(|(_, p)| p.parse::<u16>().ok().filter(|p| *p > 0))?;
    Some((port, if udp { "udp" } else { "tcp" }))
}

/// Who holds `port`: a container that publishes it (by name), else a process on the host (by
/// name and pid, when this process may see it), else "another process".
pub async fn holder(docker: &Docker, port: u16, protocol: &str) -> String {
    let filters = HashMap::from([("publish".to_owned(), vec![format!("{port}/{protocol}")])]);
    let opts = ListContainersOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let list = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        docker.list_containers(Some(opts)),
    )
    .await;
    if let Ok(Ok(list)) = list {
        if let Some(name) = list
            .iter()
            .filter_map(|c| c.names.as_ref()?.first().cloned())
            .next()
        {
            return format!("container {}", name.trim_start_matches('/'));
        }
    }
    let proto = protocol.to_owned();
    tokio::task::spawn_blocking(move || process_holding(port, &proto))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "another process on the host".to_owned())
}

/// The process with a socket bound to `port`, from /proc (root sees every process).
fn process_holding(port: u16, protocol: &str) -> Option<String> {
    let mut inodes = Vec::new();
    for table in [
        format!("/proc/net/{protocol}"),
        format!("/proc/net/{protocol}6"),
    ] {
        let Ok(text) = std::fs::read_to_string(&table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; for TCP only listeners (state 0A) count.
            let local_port = f.get(1).and_then(|a| a.rsplit_once(':')).map(|(_, p)| p);
            let listening = protocol != "tcp" || f.get(3) == Some(&"0A");
            if local_port.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port) && listening {
                if let Some(inode) = f.get(9) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = proc_entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                let comm =
                    std::fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
                return Some(format!("process {} (pid {pid})", comm.trim()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_read_from_the_engines_messages() {
        assert_eq!(
            conflict("driver failed programming external connectivity on endpoint dh_x (9c1): Error starting userland proxy: listen tcp4 0.0.0.0:18977: bind: address already in use"),
            Some((18977, "tcp"))
        );
        assert_eq!(
            conflict("Bind for 0.0.0.0:8080 failed: port is already allocated"),
            Some((8080, "tcp"))
        );
        assert_eq!(
            conflict("Error starting userland proxy: listen udp 0.0.0.0:5353: bind: address already in use"),
            Some((5353, "udp"))
        );
        assert_eq!(conflict("no such image"), None);
    }

    #[test]
    fn a_listening_process_of_this_host_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let who = process_holding(port, "tcp").expect("found");
        assert!(
            who.contains(&format!("pid {}", std::process::id())),
            "{who}"
        );
    }
}
