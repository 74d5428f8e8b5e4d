//! `--git URL`: desired state from a git repository, fetched with the git CLI into a cache
//! beside the state file.
//!
//! Each fetched commit's tree is unpacked whole into a directory of its own and only then made
//! current (a rename of a one-line file), so a half-fetched tree is never read and never prunes
//! anything; a fetch that fails (an unreachable remote, a ref that vanished) keeps the last good
//! commit. The git CLI rather than a library: it speaks every transport and credential helper
//! users already configure, and keeps dockhand's build lean.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{directory, Part};

/// Labels of objects from a git source start with this.
pub const GIT_PREFIX: &str = "git:";

/// How long one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {op} of {url} failed: {message}")]
    Command {
        op: &'static str,
        url: String,
        message: String,
    },
    #[error("cannot unpack commit {commit} of {url}: {source}")]
    Unpack {
        commit: String,
        url: String,
        source: std::io::Error,
    },
}

/// One repository, ref and folder to read manifests from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSource {
    pub url: String,
    /// A branch, tag or commit; the remote's HEAD when `None`.
    pub reference: Option<String>,
    /// The folder in the repository ("" for its root).
    pub path: String,
    /// `<state>.git/<hash of url, ref and path>`: the bare repository, the unpacked trees and
    /// the current commit.
    pub cache: PathBuf,
    /// What the remote is logged in to with, beside git's own configuration.
    pub credentials: Option<Credentials>,
    /// How long one git command may run before it and its helpers are killed.
    pub timeout: Duration,
}

/// A file that logs in to a remote: read at each fetch (so a rotated token is used from the
/// next one), handed to git through its environment (never its command line, which other
/// users of the host can read), and never shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// `TOKEN` or `USER:TOKEN` on the first line, sent over HTTP(S) as basic authentication
    /// (user `x-access-token` when none is given, which GitHub, Gitea and GitLab accept).
    Token(PathBuf),
    /// An SSH private key; the remote's host key is learnt on first use and checked after
    /// (kept beside the cache).
    SshKey(PathBuf),
}

impl Credentials {
    /// The environment that makes git use them, for a source whose cache is `cache`.
    fn env(&self, cache: &Path) -> Result<Vec<(String, String)>, String> {
        match self {
            Credentials::Token(file) => {
                let text = zeroize::Zeroizing::new(
                    std::fs::read_to_string(file)
                        .map_err(|e| format!("--git-token-file {}: {e}", file.display()))?,
                );
                let line = text.lines().next().unwrap_or_default().trim();
                if line.is_empty() {
                    return Err(format!("--git-token-file {} is empty", file.display()));
                }
                let pair = if line.contains(':') {
                    line.to_owned()
                } else {
                    format!("x-access-token:{line}")
                };
                Ok(basic_auth_env(&pair))
            }
            Credentials::SshKey(key) => {
                std::fs::metadata(key)
                    .map_err(|e| format!("--git-ssh-key {}: {e}", key.display()))?;
                let known = cache.join("known_hosts");
                Ok(vec![(
                    "GIT_SSH_COMMAND".into(),
                    format!(
                        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new",
                        shell_quote(&key.to_string_lossy()),
                        shell_quote(&known.to_string_lossy())
                    ),
                )])
            }
        }
    }
}

/// The environment that makes git send `USER:PASSWORD` as HTTP basic authentication
/// (`http.extraHeader` by `GIT_CONFIG_*`): never on its command line.
fn basic_auth_env(pair: &str) -> Vec<(String, String)> {
    use base64::Engine as _;
    let header = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    vec![
        ("GIT_CONFIG_COUNT".into(), "1".into()),
        ("GIT_CONFIG_KEY_0".into(), "http.extraHeader".into()),
        ("GIT_CONFIG_VALUE_0".into(), header),
    ]
}

/// The `user:password` of an HTTP(S) URL, decoded, if it has one.
fn userinfo(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    Some(format!(
        "{}:{}",
        percent_decode(user),
        percent_decode(password)
    ))
}

/// `%XX` escapes decoded (as a URL's userinfo carries them).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` as one word for the shell git runs `GIT_SSH_COMMAND` with.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The URL without user name or password, as labels, logs and events show it.
pub fn display_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}{host}{path}")
}

/// Creates `cache` and the state's `.git` directory above it private (0700), like the state
/// file: a checkout may hold what only the operator should read, and nothing below a 0700
/// directory is reachable by others whatever its own mode.
fn private_dirs(cache: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(cache)?;
    for dir in [Some(cache), cache.parent()].into_iter().flatten() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

impl GitSource {
    pub fn new(url: &str, reference: Option<&str>, path: &str, state: &Path) -> Self {
        let path = path.trim_matches('/').to_owned();
        let key = crate::manifest::short_hash(
            format!("{url}\0{}\0{path}", reference.unwrap_or("")).as_bytes(),
        );
        let mut cache = state.as_os_str().to_owned();
        cache.push(".git");
        Self {
            url: url.to_owned(),
            reference: reference.map(str::to_owned),
            path,
            cache: PathBuf::from(cache).join(key),
            credentials: None,
            timeout: GIT_TIMEOUT,
        }
    }

    /// Logs in to the remote with `credentials`.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// What every label of this source starts with: `git:<url>@<ref>:<path>/`.
    pub fn label_prefix(&self) -> String {
        let reference = self.reference.as_deref().unwrap_or("HEAD");
        let path = match self.path.as_str() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        format!("{GIT_PREFIX}{}@{reference}:{path}", display_url(&self.url))
    }

    /// `<url>@<ref>:<path>/`, for messages.
    pub fn describe(&self) -> String {
        self.label_prefix()[GIT_PREFIX.len()..].to_owned()
    }

    /// The URL git is given: without its password when one is in it (sent as a header).
    fn fetch_url(&self) -> String {
        if self.credentials.is_none() && userinfo(&self.url).is_some() {
            display_url(&self.url)
        } else {
            self.url.clone()
        }
    }

    fn repo(&self) -> PathBuf {
        self.cache.join("repo.git")
    }

    fn trees(&self) -> PathBuf {
        self.cache.join("trees")
    }

    /// What a failed fetch leaves: `<error>; keeping commit X`, or that nothing is read yet.
    fn kept(&self, e: &GitError) -> String {
        match self.current() {
            Some(c) => format!("{e}; keeping commit {}", short(&c)),
            None => format!("{e}; no commit yet, so its objects are held"),
        }
    }

    /// The commit whose tree is read now, if one was ever fetched.
    pub fn current(&self) -> Option<String> {
        let c = std::fs::read_to_string(self.cache.join("current")).ok()?;
        let c = c.trim();
        (!c.is_empty() && self.trees().join(c).is_dir()).then(|| c.to_owned())
    }

    async fn git(&self, op: &'static str, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let failed = |message: String| GitError::Command {
            op,
            url: display_url(&self.url),
            message,
        };
        let mut cmd = tokio::process::Command::new("git");
        // Only commands that talk to the remote log in.
        if op == "fetch" {
            if let Some(c) = &self.credentials {
                cmd.envs(c.env(&self.cache).map_err(failed)?);
            } else if let Some(pair) = userinfo(&self.url) {
                // A URL's own `user:password@` goes to git as a header in its environment,
                // and the URL without it in its arguments: git's command line shows in `ps`.
                cmd.envs(basic_auth_env(&pair));
            }
        }
        // Its own process group, so a timeout ends git's helpers too (`git-remote-http` kept
        // running, each holding a connection, when only git was killed).
        let child = cmd
            .args(args)
            // Never wait for a password on a terminal; never read the user's global hooks.
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot run git: {e}")))?;
        let group = child.id().and_then(|id| libc::pid_t::try_from(id).ok());
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|e| failed(format!("cannot run git: {e}")))?,
            Err(_) => {
                if let Some(pgid) = group {
                    // SAFETY: kill only sends a signal, to the process group git leads (made
                    // above for this command alone).
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                }
                return Err(failed(format!("no answer in {}s", self.timeout.as_secs())));
            }
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // git may echo the URL, credentials included: only ever show it redacted.
            let said = stderr.trim().replace(&self.url, &display_url(&self.url));
            return Err(failed(said));
        }
        Ok(out.stdout)
    }

    /// Fetches the ref and makes its commit current; returns it. On any failure the current
    /// commit stays as it was.
    pub async fn fetch(&self) -> Result<String, GitError> {
        let repo = self.repo();
        let repo_s = repo.to_string_lossy().into_owned();
        // Made private at every fetch: a cache an older dockhand made 0755 is closed too.
        private_dirs(&self.cache).map_err(|e| GitError::Command {
            op: "init",
            url: display_url(&self.url),
            message: e.to_string(),
        })?;
        if !repo.join("HEAD").exists() {
            self.git("init", &["init", "--bare", "--quiet", &repo_s])
                .await?;
        }
        let refspec = format!(
            "+{}:refs/dockhand/fetched",
            self.reference.as_deref().unwrap_or("HEAD")
        );
        self.git(
            "fetch",
            &[
                "-C",
                &repo_s,
                "fetch",
                "--quiet",
                "--no-tags",
                "--depth",
                "1",
                // Whatever the URL is, git reads it as a repository, never as an option.
                "--",
                &self.fetch_url(),
                &refspec,
            ],
        )
        .await?;
        let commit = self
            .git(
                "rev-parse",
                &["-C", &repo_s, "rev-parse", "refs/dockhand/fetched^{commit}"],
            )
            .await?;
        let commit = String::from_utf8_lossy(&commit).trim().to_owned();
        let previous = self.current();
        let tree = self.trees().join(&commit);
        if !tree.is_dir() {
            let tar = self
                .git(
                    "archive",
                    &["-C", &repo_s, "archive", "--format=tar", &commit],
                )
                .await?;
            let unpack = |e: std::io::Error| GitError::Unpack {
                commit: commit.clone(),
                url: display_url(&self.url),
                source: e,
            };
            // A big tree is many files: written off the async workers, so passes and the API
            // keep running while it unpacks.
            let partial = self.trees().join(format!(".partial-{commit}"));
            let target = tree.clone();
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(&partial);
                std::fs::create_dir_all(&partial)?;
                tar::Archive::new(tar.as_slice()).unpack(&partial)?;
                std::fs::rename(&partial, &target)
            })
            .await
            .map_err(|e| unpack(std::io::Error::other(e)))?
            .map_err(unpack)?;
        }
        let next = self.cache.join(".current");
        std::fs::write(&next, format!("{commit}\n"))
            .and_then(|()| std::fs::rename(&next, self.cache.join("current")))
            .map_err(|e| GitError::Unpack {
                commit: commit.clone(),
                url: display_url(&self.url),
                source: e,
            })?;
        self.keep_only(&[commit.as_str(), previous.as_deref().unwrap_or_default()]);
        Ok(commit)
    }

    /// Removes the trees of commits but `keep` (the new one, and the one before it, which a pass
    /// running beside this fetch may be reading; the one before that is at least one fetch
    /// interval old).
    fn keep_only(&self, keep: &[&str]) {
        let Ok(entries) = std::fs::read_dir(self.trees()) else {
            return;
        };
        for e in entries.flatten() {
            if !keep.contains(&e.file_name().to_string_lossy().as_ref()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// The current commit's manifests, labelled with this source's prefix. Before any fetch
    /// succeeded the source is missing (its objects are held, nothing is pruned).
    pub fn read(&self, compose: &directory::ComposeFiles) -> Part {
        let Some(commit) = self.current() else {
            return Part {
                missing: true,
                ..Part::default()
            };
        };
        let dir = self.trees().join(&commit).join(&self.path);
        let mut part = directory::read_labeled(&dir, compose, &self.label_prefix());
        for o in part.files.values_mut().flatten() {
            o.commit = Some(commit.clone());
        }
        part
    }
}

/// Fetches every source once; says what each now reads (or why it keeps what it had) on
/// standard error. For the verbs that run one reconcile (`sync`, `diff`).
pub async fn fetch_once(sources: &[GitSource]) {
    for g in sources {
        match g.fetch().await {
            Ok(commit) => eprintln!("git: {} at {}", g.describe(), short(&commit)),
            Err(e) => eprintln!("warning: {}", g.kept(&e)),
        }
    }
}

/// `up`'s fetch loop: every `every`, fetches each source; a new commit calls `changed` (a pass
/// that reads the sources again) and is an event; a failure is an event once per distinct error
/// (not once per interval), and the last good commit stays.
pub async fn keep_fetching(
    sources: Vec<GitSource>,
    every: Duration,
    store: crate::store::Store,
    instance: String,
    changed: impl Fn() + Send + Sync + 'static,
    kick: std::sync::Arc<tokio::sync::Notify>,
    notifier: Option<crate::notify::Notifier>,
) {
    use crate::store::NewEvent;
    let mut failing: Vec<Option<String>> = vec![None; sources.len()];
    loop {
        for (g, failed) in sources.iter().zip(failing.iter_mut()) {
            let before = g.current();
            let event = match g.fetch().await {
                Ok(commit) => {
                    let recovered = failed.take().is_some();
                    let new = before.as_deref() != Some(commit.as_str());
                    if new {
                        changed();
                    }
                    (new || recovered).then(|| NewEvent {
                        key: None,
                        reason: "git-fetched",
                        message: format!("{} at commit {}", g.describe(), short(&commit)),
                    })
                }
                Err(e) => {
                    let message = g.kept(&e);
                    (failed.as_ref() != Some(&message)).then(|| {
                        tracing::warn!("{message}");
                        if let Some(n) = &notifier {
                            n.source_event("git-fetch-failed", &g.describe(), &message);
                        }
                        *failed = Some(message.clone());
                        NewEvent {
                            key: None,
                            reason: "git-fetch-failed",
                            message,
                        }
                    })
                }
            };
            if let Some(event) = event {
                if let Err(e) = store.append_events(&instance, &[event]).await {
                    tracing::warn!("cannot record a git fetch: {e}");
                }
            }
        }
        // The next fetch: after the interval, or at once on a verified webhook call.
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = kick.notified() => {}
        }
    }
}

/// A webhook's secret, and what a verified call wakes (`up`'s fetch loop).
#[derive(Clone)]
pub struct Webhook {
    pub secret: Vec<u8>,
    pub kick: std::sync::Arc<tokio::sync::Notify>,
    /// The last deliveries accepted (their ids, else their bodies' digests): a replay of a
    /// signed call is answered, and fetches nothing.
    pub seen: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

/// How many deliveries a webhook remembers.
const SEEN_DELIVERIES: usize = 1024;

impl Webhook {
    pub fn new(secret: Vec<u8>, kick: std::sync::Arc<tokio::sync::Notify>) -> Webhook {
        Webhook {
            secret,
            kick,
            seen: std::sync::Arc::default(),
        }
    }

    /// Whether this (verified) delivery is new: its id (GitHub's, Gitea's or GitLab's
    /// delivery header), or the body's digest when it names none. Remembers it.
    pub fn first_time(&self, header: impl Fn(&str) -> Option<String>, body: &[u8]) -> bool {
        let key = [
            "x-github-delivery",
            "x-gitea-delivery",
            "x-gitlab-event-uuid",
        ]
        .into_iter()
        .find_map(|h| {
            header(h)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{h}:{v}"))
        })
        .unwrap_or_else(|| format!("body:{}", crate::manifest::short_hash(body)));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&key) {
            return false;
        }
        if seen.len() == SEEN_DELIVERIES {
            seen.pop_front();
        }
        seen.push_back(key);
        true
    }
}

/// Whether a webhook call carries a valid signature of `body` made with `secret`: GitHub's and
/// Gitea's `X-Hub-Signature-256: sha256=HEX`, Gitea's `X-Gitea-Signature: HEX` (both
/// HMAC-SHA256 of the body), or GitLab's `X-Gitlab-Token: SECRET`. Compared in constant time.
pub fn verified(secret: &[u8], header: impl Fn(&str) -> Option<String>, body: &[u8]) -> bool {
    use hmac::Mac;
    let hex_hmac = |given: &str| {
        let Some(given) = decode_hex(given.trim()) else {
            return false;
        };
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    };
    if let Some(sig) = header("x-hub-signature-256") {
        return sig.strip_prefix("sha256=").is_some_and(hex_hmac);
    }
    if let Some(sig) = header("x-gitea-signature") {
        return hex_hmac(&sig);
    }
    if let Some(token) = header("x-gitlab-token") {
        return crate::store::constant_time_eq(token.as_bytes(), secret);
    }
    false
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The first 12 digits of a commit.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_reach_git_through_its_environment_only() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().expect("tmp");
        let token = dir.path().join("token");
        std::fs::write(&token, "tok123\nignored\n").expect("write");
        let env = Credentials::Token(token).env(dir.path()).expect("env");
        let header = &env
            .iter()
            .find(|(k, _)| k == "GIT_CONFIG_VALUE_0")
            .expect("set")
            .1;
        let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:tok123");
        assert_eq!(header, &format!("Authorization: Basic {basic}"));
        let key = dir.path().join("it's a key");
        std::fs::write(&key, "k").expect("write");
        let env = Credentials::SshKey(key).env(dir.path()).expect("env");
        assert_eq!(env[0].0, "GIT_SSH_COMMAND");
        assert!(env[0].1.contains("-i '"), "{}", env[0].1);
        assert!(env[0].1.contains("it'\\''s a key"), "{}", env[0].1);
        assert!(env[0].1.contains("StrictHostKeyChecking=accept-new"));
        let gone = Credentials::Token(dir.path().join("missing")).env(dir.path());
        assert!(gone.is_err_and(|e| e.contains("--git-token-file")));
    }

    #[test]
    fn webhook_calls_are_verified_as_github_gitea_and_gitlab_sign_them() {
        use hmac::Mac;
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("a key");
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let with =
            |name: &'static str, value: String| move |h: &str| (h == name).then(|| value.clone());
        let github = with("x-hub-signature-256", format!("sha256={hex}"));
        assert!(verified(b"s3cret", &github, body));
        assert!(!verified(b"other", &github, body));
        assert!(!verified(b"s3cret", &github, b"{}"));
        assert!(verified(
            b"s3cret",
            with("x-gitea-signature", hex.clone()),
            body
        ));
        assert!(verified(
            b"s3cret",
            with("x-gitlab-token", "s3cret".into()),
            body
        ));
        assert!(!verified(
            b"s3cret",
            with("x-gitlab-token", "s3cre".into()),
            body
        ));
        assert!(!verified(b"s3cret", |_: &str| None, body));
        assert!(!verified(
            b"s3cret",
            with("x-hub-signature-256", "sha256=zz".into()),
            body
        ));
    }

    #[test]
    fn a_urls_own_password_reaches_git_as_a_header_not_an_argument() {
        use base64::Engine as _;
        let s = GitSource::new("https://bob:p%40ss@h/app.git", None, "", Path::new("/s.db"));
        assert_eq!(s.fetch_url(), "https://h/app.git");
        let env = basic_auth_env(&userinfo(&s.url).expect("a password"));
        let header = &env
            .iter()
            .find(|(k, _)| k == "GIT_CONFIG_VALUE_0")
            .expect("a header")
            .1;
        let encoded = header.strip_prefix("Authorization: Basic ").expect("basic");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        assert_eq!(decoded, b"bob:p@ss");
        let plain = GitSource::new("https://h/app.git", None, "", Path::new("/s.db"));
        assert_eq!(plain.fetch_url(), "https://h/app.git");
        assert!(userinfo("git@h:app.git").is_none());
    }

    #[test]
    fn a_replayed_delivery_is_known_and_a_new_one_is_not() {
        let hook = Webhook::new(b"s".to_vec(), std::sync::Arc::default());
        let with =
            |id: &'static str| move |h: &str| (h == "x-github-delivery").then(|| id.to_owned());
        assert!(hook.first_time(with("a1"), b"push"));
        assert!(
            !hook.first_time(with("a1"), b"push"),
            "the same delivery again"
        );
        assert!(
            hook.first_time(with("a2"), b"push"),
            "a new delivery of the same body"
        );
        let none = |_: &str| None;
        assert!(hook.first_time(none, b"push 2"));
        assert!(
            !hook.first_time(none, b"push 2"),
            "no id: the same body again"
        );
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            display_url("https://user:tok3n@git.example/team/app.git"),
            "https://git.example/team/app.git"
        );
        assert_eq!(
            display_url("git://127.0.0.1:9418/app.git"),
            "git://127.0.0.1:9418/app.git"
        );
        assert_eq!(display_url("/srv/app.git"), "/srv/app.git");
    }

    #[test]
    fn each_url_ref_and_path_has_a_cache_and_a_label_of_its_own() {
        let state = Path::new("/var/lib/dh.db");
        let a = GitSource::new("https://u:p@h/app.git", Some("main"), "/deploy/", state);
        let b = GitSource::new("https://u:p@h/app.git", Some("prod"), "deploy", state);
        assert_ne!(a.cache, b.cache);
        assert!(a.cache.starts_with("/var/lib/dh.db.git"));
        assert_eq!(a.label_prefix(), "git:https://h/app.git@main:deploy/");
        let root = GitSource::new("/srv/app.git", None, "", state);
        assert_eq!(root.label_prefix(), "git:/srv/app.git@HEAD:");
    }

    fn run(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    async fn the_checkout_is_private_and_a_url_is_never_read_as_an_option() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let origin = dir.path().join("origin");
        std::fs::create_dir(&origin).expect("mkdir");
        run(&origin, &["init", "-q", "-b", "main"]);
        std::fs::write(origin.join("private.txt"), "operator only\n").expect("write");
        run(&origin, &["add", "."]);
        run(&origin, &["commit", "-q", "-m", "one"]);
        let state = dir.path().join("state.db");
        let source = GitSource::new(&origin.display().to_string(), None, "", &state);
        let commit = source.fetch().await.expect("fetches");
        let mut root = state.clone().into_os_string();
        root.push(".git");
        for d in [PathBuf::from(&root), source.cache.clone()] {
            let mode = std::fs::metadata(&d).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", d.display());
        }
        assert!(source.trees().join(&commit).join("private.txt").is_file());
        // `--git=--upload-pack=...` reaches git as a repository, not an option.
        let marker = dir.path().join("ran");
        let evil = format!("--upload-pack=touch {}", marker.display());
        let e = GitSource::new(&evil, None, "", &state)
            .fetch()
            .await
            .expect_err("not a repository");
        assert!(!marker.exists(), "{e}");
    }

    #[tokio::test]
    async fn a_fetch_that_times_out_leaves_no_git_helper_behind() {
        // A server that accepts and never answers, as the review's: each timed-out fetch left
        // a `git-remote-http` holding its connection.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _held = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for c in listener.incoming().take(8) {
                kept.push(c);
            }
            std::thread::sleep(std::time::Duration::from_secs(30));
        });
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("http://127.0.0.1:{port}/never.git");
        let mut source = GitSource::new(&url, None, "", &dir.path().join("state.db"));
        source.timeout = Duration::from_secs(2);
        let e = source.fetch().await.expect_err("times out");
        assert!(e.to_string().contains("no answer"), "{e}");
        let left = || {
            std::fs::read_dir("/proc")
                .expect("proc")
                .flatten()
                .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .filter(|c| c.contains(&url))
                .collect::<Vec<_>>()
        };
        // The kill is immediate; the kernel reaps within moments.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !left().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(left(), Vec::<String>::new());
    }
}
