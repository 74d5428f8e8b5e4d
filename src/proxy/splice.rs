//! Zero-copy TCP relaying: splice(2) moves bytes from one socket into a pipe and from the pipe
//! into the other socket without them ever reaching user space, so a Route costs two system
//! calls per chunk and no copy. Small exchanges are copied through a buffer instead (a pipe
//! costs more system calls than a request), and so is a stream when no pipe can be made (out
//! of descriptors).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// What each direction's pipe is grown to: fewer calls than the default 64 KiB. (1 MiB measured
/// no better on loopback here.)
const PIPE_SIZE: libc::c_int = 1 << 18;

/// The buffer of a stream that got no pipe.
const COPY_BUFFER: usize = 256 * 1024;

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds: [libc::c_int; 2] = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on a pipe we own; a refusal leaves the default size.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        Ok(Pipe {
            read,
            write,
            size: usize::try_from(size)
                .ok()
                .filter(|s| *s > 0)
                .unwrap_or(64 * 1024),
        })
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors and no offsets; the kernel checks both descriptors.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Ends `s`'s sending side (the peer reads end-of-file), as the other side did.
fn shutdown_write(s: &TcpStream) {
    // SAFETY: shutdown on a socket we hold; an error (already closed) changes nothing.
    unsafe {
        libc::shutdown(s.as_raw_fd(), libc::SHUT_WR);
    }
}

/// A read is relayed through a buffer of this size until one fills it: a request or a reply
/// (most connections) costs no pipe, and a stream goes through splice(2) from its first full
/// read on, as HAProxy's splice-auto does.
const SMALL: usize = 16 * 1024;

/// Reads what `from` has into `buf`: 0 when it ended its side.
async fn read_some(from: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        from.readable().await?;
        match from.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return r,
        }
    }
}

async fn write_all(to: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        to.writable().await?;
        match to.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Splices what `from` has into `pipe`: 0 when it ended its side.
async fn splice_in(from: &TcpStream, pipe: &Pipe) -> io::Result<usize> {
    loop {
        from.readable().await?;
        match from.try_io(Interest::READABLE, || {
            splice(from.as_raw_fd(), pipe.write.as_raw_fd(), pipe.size)
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return r,
        }
    }
}

/// Splices the `n` bytes in `pipe` into `to`, draining it, so a read never finds it full.
async fn splice_out(pipe: &Pipe, to: &TcpStream, n: usize) -> io::Result<()> {
    let mut left = n;
    while left > 0 {
        to.writable().await?;
        match to.try_io(Interest::WRITABLE, || {
            splice(pipe.read.as_raw_fd(), to.as_raw_fd(), left)
        }) {
            Ok(m) => left -= m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How one direction was carried: the bytes, and whether a pipe carried some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Moved {
    bytes: u64,
    spliced: bool,
}

/// Moves what `from` sends to `to` until `from` ends its side, then ends `to`'s.
async fn one_way(from: &TcpStream, to: &TcpStream) -> io::Result<Moved> {
    let mut bytes = 0u64;
    let mut buf = vec![0u8; SMALL];
    let mut pipe: Option<Pipe> = None;
    loop {
        let n = match &pipe {
            Some(p) => splice_in(from, p).await?,
            None => read_some(from, &mut buf).await?,
        };
        if n == 0 {
            shutdown_write(to);
            return Ok(Moved {
                bytes,
                spliced: pipe.is_some(),
            });
        }
        match &pipe {
            Some(p) => splice_out(p, to, n).await?,
            None => write_all(to, &buf[..n]).await?,
        }
        bytes += n as u64;
        if pipe.is_none() && buf.len() == SMALL && n == SMALL {
            // A stream: on through a pipe, or, with none to be had (out of descriptors), a
            // bigger buffer.
            match Pipe::new() {
                Ok(p) => {
                    pipe = Some(p);
                    buf = Vec::new();
                }
                Err(_) => buf.resize(COPY_BUFFER, 0),
            }
        }
    }
}

/// Relays both ways between `a` and `b` until both have ended their sides (or either fails);
/// returns the bytes moved a → b and b → a.
pub async fn relay(a: &TcpStream, b: &TcpStream) -> io::Result<(u64, u64)> {
    let (ab, ba) = tokio::try_join!(one_way(a, b), one_way(b, a))?;
    Ok((ab.bytes, ba.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn bytes_and_half_closes_cross_both_ways_and_are_counted() {
        let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = server.local_addr().expect("addr");
        // The far end: reads everything, then answers with its length and closes.
        let far = tokio::spawn(async move {
            let (mut s, _) = server.accept().await.expect("accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.expect("read");
            s.write_all(got.len().to_string().as_bytes())
                .await
                .expect("write");
            got
        });
        let front = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let front_addr = front.local_addr().expect("addr");
        let proxy = tokio::spawn(async move {
            let (inbound, _) = front.accept().await.expect("accept");
            let upstream = TcpStream::connect(target).await.expect("connect");
            relay(&inbound, &upstream).await
        });
        let mut client = TcpStream::connect(front_addr).await.expect("connect");
        let payload: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&payload).await.expect("send");
        client.shutdown().await.expect("half-close");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("answer");
        assert_eq!(answer, payload.len().to_string());
        assert_eq!(far.await.expect("far end"), payload, "every byte, in order");
        let (up, down) = proxy.await.expect("proxy").expect("relayed");
        assert_eq!((up, down), (payload.len() as u64, answer.len() as u64));
    }

    /// A connected pair over loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    #[tokio::test]
    async fn a_request_is_copied_and_a_stream_is_spliced() {
        for (len, spliced) in [(100usize, false), (SMALL - 1, false), (4 * SMALL + 7, true)] {
            let (mut client, from) = pair().await;
            let (to, mut far) = pair().await;
            let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            // All of it waits in the socket before the relay reads (it fits), so the first
            // read fills the buffer when there is enough.
            client.write_all(&payload).await.expect("send");
            client.shutdown().await.expect("half-close");
            let relay = tokio::spawn(async move { one_way(&from, &to).await });
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.expect("read");
            let moved = relay.await.expect("relay").expect("relayed");
            assert_eq!(got, payload, "{len} bytes, in order");
            assert_eq!(
                moved,
                Moved {
                    bytes: len as u64,
                    spliced
                },
                "{len} bytes"
            );
        }
    }
}
