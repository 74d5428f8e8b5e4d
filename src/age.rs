//! The age file format (age-encryption.org/v1) with X25519 recipients, so a `Secret` can live
//! encrypted in a manifest repository (SOPS-style) and only the controller's identity file opens
//! it. Written from the published format specification; interoperability is tested against
//! Debian's `age` in both directions. Only what secrets need: X25519 stanzas (others, such as
//! the CLI's grease stanzas or passphrase ones, are skipped), the armored and binary forms.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

const INTRO: &str = "age-encryption.org/v1";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const RECIPIENT_HRP: &str = "age";
const IDENTITY_HRP: &str = "age-secret-key-";

#[derive(Debug, thiserror::Error)]
pub enum AgeError {
    #[error("invalid age recipient {0:?}: expected a public key such as age1… (from `age-keygen` or `dockhand secret keygen`)")]
    BadRecipient(String),
    #[error("invalid age identity on line {line}: expected AGE-SECRET-KEY-1…")]
    BadIdentity { line: usize },
    #[error("no age identity in {0}")]
    NoIdentity(String),
    #[error("not an age file: {0}")]
    Format(String),
    #[error("no identity given to the controller (--age-identity) opens it: it was encrypted to other recipients")]
    NoMatch,
    #[error("the age header's MAC does not match: the file was altered or is corrupt")]
    BadMac,
    #[error("the age payload does not decrypt: the file was altered, truncated or is corrupt")]
    BadPayload,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A public key that secrets are encrypted to (`age1…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient(PublicKey);

impl Recipient {
    pub fn parse(s: &str) -> Result<Recipient, AgeError> {
        let bad = || AgeError::BadRecipient(s.to_owned());
        let (hrp, data) = bech32::decode(s.trim()).map_err(|_| bad())?;
        if hrp.to_lowercase() != RECIPIENT_HRP || s.trim().starts_with("AGE") {
            return Err(bad());
        }
        let bytes: [u8; 32] = data.try_into().map_err(|_| bad())?;
        Ok(Recipient(PublicKey::from(bytes)))
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hrp = bech32::Hrp::parse_unchecked(RECIPIENT_HRP);
        let s = bech32::encode::<bech32::Bech32>(hrp, self.0.as_bytes())
            .map_err(|_| std::fmt::Error)?;
        f.write_str(&s)
    }
}

/// A private key that opens secrets (`AGE-SECRET-KEY-1…`); its `Debug` shows only the public
/// half.
#[derive(Clone)]
pub struct Identity(StaticSecret);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.recipient())
    }
}

impl Identity {
    pub fn generate() -> Result<Identity, AgeError> {
        Ok(Identity(StaticSecret::from(random::<32>()?)))
    }

    pub fn recipient(&self) -> Recipient {
        Recipient(PublicKey::from(&self.0))
    }

    /// The identity's text form, as an identity file holds it.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let hrp = bech32::Hrp::parse_unchecked(IDENTITY_HRP);
        Zeroizing::new(
            bech32::encode_upper::<bech32::Bech32>(hrp, self.0.as_bytes()).unwrap_or_default(),
        )
    }

    /// Every identity in an identity file's text (`#` comments and blank lines skipped).
    pub fn parse_file(text: &str, what: &str) -> Result<Vec<Identity>, AgeError> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || AgeError::BadIdentity { line: i + 1 };
            let (hrp, data) = bech32::decode(line).map_err(|_| bad())?;
            if hrp.to_lowercase() != IDENTITY_HRP {
                return Err(bad());
            }
            let bytes: Zeroizing<[u8; 32]> =
                Zeroizing::new(data.as_slice().try_into().map_err(|_| bad())?);
            out.push(Identity(StaticSecret::from(*bytes)));
        }
        if out.is_empty() {
            return Err(AgeError::NoIdentity(what.to_owned()));
        }
        Ok(out)
    }

    /// The file key of an X25519 stanza, if it was made for this identity.
    fn unwrap(&self, share: &[u8], body: &[u8]) -> Option<Zeroizing<[u8; 16]>> {
        let share: [u8; 32] = share.try_into().ok()?;
        let shared = self.0.diffie_hellman(&PublicKey::from(share));
        if shared.as_bytes().iter().all(|b| *b == 0) {
            return None;
        }
        let mut salt = share.to_vec();
        salt.extend_from_slice(self.recipient().0.as_bytes());
        let key = hkdf::<32>(&salt, shared.as_bytes(), X25519_INFO);
        let plain = ChaCha20Poly1305::new(Key::from_slice(&*key))
            .decrypt(Nonce::from_slice(&[0; 12]), body)
            .ok()?;
        Some(Zeroizing::new(plain.as_slice().try_into().ok()?))
    }
}

fn random<const N: usize>() -> Result<[u8; N], AgeError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| AgeError::Random(e.to_string()))?;
    Ok(b)
}

fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    // N is at most 32 here, far below HKDF-SHA256's limit.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut *out);
    out
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD_NO_PAD
}

fn header_mac(file_key: &[u8], header: &[u8]) -> Hmac<Sha256> {
    let key = hkdf::<32>(&[], file_key, b"header");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*key).expect("any key length");
    mac.update(header);
    mac
}

/// The STREAM nonce of chunk `counter`.
fn chunk_nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Encrypts `plain` to `recipients`, in the armored (text) form a manifest can hold.
pub fn encrypt_armored(plain: &[u8], recipients: &[Recipient]) -> Result<String, AgeError> {
    let binary = encrypt(plain, recipients)?;
    let b = base64::engine::general_purpose::STANDARD.encode(binary);
    let mut out = String::with_capacity(b.len() + b.len() / 64 + 80);
    out.push_str(ARMOR_BEGIN);
    out.push('\n');
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(ARMOR_END);
    out.push('\n');
    Ok(out)
}

/// Encrypts `plain` to `recipients` (at least one), in the binary form.
pub fn encrypt(plain: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>, AgeError> {
    if recipients.is_empty() {
        return Err(AgeError::BadRecipient(String::new()));
    }
    let file_key = Zeroizing::new(random::<16>()?);
    let mut header = format!("{INTRO}\n");
    for r in recipients {
        let ephemeral = StaticSecret::from(random::<32>()?);
        let share = PublicKey::from(&ephemeral);
        let shared = ephemeral.diffie_hellman(&r.0);
        let mut salt = share.as_bytes().to_vec();
        salt.extend_from_slice(r.0.as_bytes());
        let key = hkdf::<32>(&salt, shared.as_bytes(), X25519_INFO);
        let body = ChaCha20Poly1305::new(Key::from_slice(&*key))
            .encrypt(Nonce::from_slice(&[0; 12]), file_key.as_slice())
            .map_err(|_| AgeError::BadPayload)?;
        header.push_str(&format!("-> X25519 {}\n", b64().encode(share.as_bytes())));
        push_body(&mut header, &body);
    }
    header.push_str("---");
    let mac = header_mac(&*file_key, header.as_bytes())
        .finalize()
        .into_bytes();
    header.push_str(&format!(" {}\n", b64().encode(mac)));
    let nonce = random::<16>()?;
    let key = hkdf::<32>(&nonce, &*file_key, b"payload");
    let aead = ChaCha20Poly1305::new(Key::from_slice(&*key));
    let mut out = header.into_bytes();
    out.extend_from_slice(&nonce);
    let chunks: Vec<&[u8]> = if plain.is_empty() {
        vec![&[]]
    } else {
        plain.chunks(CHUNK).collect()
    };
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        let sealed = aead
            .encrypt(Nonce::from_slice(&chunk_nonce(i as u64, i + 1 == n)), c)
            .map_err(|_| AgeError::BadPayload)?;
        out.extend_from_slice(&sealed);
    }
    Ok(out)
}

/// A stanza body: base64 in lines of 64 columns, the last one shorter (empty if need be).
fn push_body(header: &mut String, body: &[u8]) {
    let text = b64().encode(body);
    let mut rest = text.as_str();
    loop {
        let (line, tail) = rest.split_at(rest.len().min(64));
        header.push_str(line);
        header.push('\n');
        rest = tail;
        if line.len() < 64 {
            break;
        }
    }
}

/// Whether `text` looks like an age file (armored or binary).
pub fn is_armored(text: &str) -> bool {
    text.trim_start().starts_with(ARMOR_BEGIN)
}

/// Decrypts an age file, armored or binary, with any of `identities`.
pub fn decrypt(input: &[u8], identities: &[Identity]) -> Result<Zeroizing<Vec<u8>>, AgeError> {
    let binary;
    let data = match std::str::from_utf8(input) {
        Ok(text) if is_armored(text) => {
            binary = dearmor(text)?;
            binary.as_slice()
        }
        _ => input,
    };
    let (stanzas, mac, header_len, payload) = parse_header(data)?;
    let file_key = stanzas
        .iter()
        .filter(|s| s.kind == "X25519" && s.args.len() == 1)
        .find_map(|s| {
            let share = b64().decode(&s.args[0]).ok()?;
            identities.iter().find_map(|id| id.unwrap(&share, &s.body))
        })
        .ok_or(AgeError::NoMatch)?;
    header_mac(&*file_key, &data[..header_len])
        .verify_slice(&mac)
        .map_err(|_| AgeError::BadMac)?;
    if payload.len() < 16 {
        return Err(AgeError::BadPayload);
    }
    let (nonce, body) = payload.split_at(16);
    let key = hkdf::<32>(nonce, &*file_key, b"payload");
    let aead = ChaCha20Poly1305::new(Key::from_slice(&*key));
    let mut plain = Zeroizing::new(Vec::with_capacity(body.len()));
    let chunks: Vec<&[u8]> = body.chunks(CHUNK + TAG).collect();
    if chunks.is_empty() {
        return Err(AgeError::BadPayload);
    }
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        let last = i + 1 == n;
        let opened = aead
            .decrypt(Nonce::from_slice(&chunk_nonce(i as u64, last)), c)
            .map_err(|_| AgeError::BadPayload)?;
        // Only the first chunk of an empty file may be empty.
        if last && opened.is_empty() && i > 0 {
            return Err(AgeError::BadPayload);
        }
        plain.extend_from_slice(&opened);
    }
    Ok(plain)
}

fn dearmor(text: &str) -> Result<Vec<u8>, AgeError> {
    let body = text
        .trim()
        .strip_prefix(ARMOR_BEGIN)
        .and_then(|t| t.strip_suffix(ARMOR_END))
        .ok_or_else(|| AgeError::Format(format!("armor must end with {ARMOR_END}")))?;
    let joined: String = body.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(joined)
        .map_err(|e| AgeError::Format(format!("armored body: {e}")))
}

struct Stanza {
    kind: String,
    args: Vec<String>,
    body: Vec<u8>,
}

/// The stanzas, the MAC, the length of the MAC'd header (through `---`) and the payload.
#[allow(clippy::type_complexity)]
fn parse_header(data: &[u8]) -> Result<(Vec<Stanza>, Vec<u8>, usize, &[u8]), AgeError> {
    let bad = |what: &str| AgeError::Format(what.to_owned());
    let mut pos = 0;
    let mut line = || -> Result<(&str, usize), AgeError> {
        let start = pos;
        let end = data[start..]
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad("header ends early"))?
            + start;
        pos = end + 1;
        let text = std::str::from_utf8(&data[start..end]).map_err(|_| bad("header is not text"))?;
        Ok((text, start))
    };
    let (intro, _) = line()?;
    if intro != INTRO {
        return Err(bad("expected the age-encryption.org/v1 header"));
    }
    let mut stanzas = Vec::new();
    loop {
        let (l, start) = line()?;
        if let Some(mac) = l.strip_prefix("--- ") {
            let mac = b64()
                .decode(mac)
                .map_err(|_| bad("the MAC is not base64"))?;
            return Ok((stanzas, mac, start + 3, &data[pos..]));
        }
        let mut words = l
            .strip_prefix("-> ")
            .ok_or_else(|| bad("expected a stanza (->) or the MAC line (---)"))?
            .split(' ');
        let kind = words.next().unwrap_or_default().to_owned();
        let args = words.map(str::to_owned).collect();
        let mut body = String::new();
        loop {
            let (b, _) = line()?;
            body.push_str(b);
            if b.len() < 64 {
                break;
            }
        }
        let body = b64()
            .decode(body)
            .map_err(|_| bad("a stanza body is not base64"))?;
        stanzas.push(Stanza { kind, args, body });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_encrypted_to_an_identity_decrypts_with_it_only() {
        let id = Identity::generate().expect("random");
        let other = Identity::generate().expect("random");
        for plain in [
            &b""[..],
            b"hunter2",
            &vec![7u8; CHUNK],
            &vec![9u8; CHUNK * 2 + 5],
        ] {
            let armored =
                encrypt_armored(plain, &[other.recipient(), id.recipient()]).expect("encrypts");
            assert!(is_armored(&armored));
            let opened = decrypt(armored.as_bytes(), std::slice::from_ref(&id)).expect("opens");
            assert_eq!(opened.as_slice(), plain);
        }
        let third = Identity::generate().expect("random");
        let armored = encrypt_armored(b"x", &[id.recipient()]).expect("encrypts");
        assert!(matches!(
            decrypt(armored.as_bytes(), &[third]),
            Err(AgeError::NoMatch)
        ));
    }

    #[test]
    fn an_altered_file_is_refused() {
        let id = Identity::generate().expect("random");
        let mut binary = encrypt(b"hunter2", &[id.recipient()]).expect("encrypts");
        let last = binary.len() - 1;
        binary[last] ^= 1;
        assert!(matches!(
            decrypt(&binary, std::slice::from_ref(&id)),
            Err(AgeError::BadPayload)
        ));
        assert!(matches!(
            decrypt(b"hello\n", &[id]),
            Err(AgeError::Format(_))
        ));
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let id = Identity::generate().expect("random");
        let text = id.to_secret_string();
        assert!(text.starts_with("AGE-SECRET-KEY-1"));
        let back =
            Identity::parse_file(&format!("# created: now\n{}\n", *text), "f").expect("parses");
        assert_eq!(back[0].recipient(), id.recipient());
        let r = id.recipient().to_string();
        assert!(r.starts_with("age1"));
        assert_eq!(Recipient::parse(&r).expect("parses"), id.recipient());
        assert!(Recipient::parse("age1nope").is_err());
        assert!(Identity::parse_file("# nothing\n", "f").is_err());
        assert!(!format!("{id:?}").contains("SECRET"));
    }
}
