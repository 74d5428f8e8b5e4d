//! The few terminal calls an interactive session (`exec -it`, `attach`) needs: raw mode and
//! the window's size, followed as it changes.

/// Restores the terminal's settings when dropped.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

pub fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

impl RawMode {
    pub fn enable(fd: i32) -> Option<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails, and we check which.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores settings read earlier from the same descriptor.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// Columns and rows of the terminal on `fd`.
pub fn size(fd: i32) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails, and we check which.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
            .then_some((ws.ws_col, ws.ws_row))
    }
}

/// Calls `resize` with the terminal's size now and whenever the window changes, until the
/// process ends.
pub fn follow_window_size<F, Fut>(resize: F)
where
    F: Fn(u16, u16) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut winch =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        loop {
            if let Some((w, h)) = size(libc::STDOUT_FILENO) {
                resize(w, h).await;
            }
            match winch.as_mut() {
                Some(s) => {
                    if s.recv().await.is_none() {
                        return;
                    }
                }
                None => return,
            }
        }
    });
}

/// Copies standard input to `input` until either ends, then closes `input` (the other side then
/// sees end of input).
pub fn forward_stdin<W>(mut input: W) -> tokio::task::JoinHandle<()>
where
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut input).await;
        let _ = input.shutdown().await;
    })
}
