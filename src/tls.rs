//! One TLS setup for every HTTP client dockhand makes (notifications, `--server`): rustls on
//! *ring*, trusting the host's certificates (or `SSL_CERT_FILE`'s). rustls now prefers aws-lc-rs
//! for its post-quantum key exchange, whose build needs cmake and minutes on this project's
//! machines; for webhooks and a controller's API, ring's classical suites are enough.

/// A client builder with the TLS provider installed (reqwest panics without one).
pub fn client_builder() -> reqwest::ClientBuilder {
    install_provider();
    reqwest::Client::builder()
}

/// Makes *ring* the process's TLS provider, once; later calls change nothing.
#[allow(deprecated)]
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
