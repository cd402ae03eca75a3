//! HTTP Digest authentication as SIP uses it (RFC 3261 §22.2–§22.4 over RFC 2617 §3.2): parsing a
//! `WWW-Authenticate` (401) or `Proxy-Authenticate` (407) challenge, computing the request digest
//! (MD5 and MD5-sess, with or without `qop=auth`) and writing the `Authorization` /
//! `Proxy-Authorization` value. [`DigestSession`] keeps the latest challenge of each kind for one
//! call and counts `nc` per nonce, so in-dialog requests (BYE) can reuse it.
//!
//! The challenge parser is hand-written rather than rsip's typed `WwwAuthenticate`: rsip 0.4 refuses
//! the common `qop="auth,auth-int"` list and whitespace around `=`, both of which real servers send.
//! Sans-IO: nothing here sends or logs; the password never appears in `Debug` output.

use std::fmt;

use md5::{Digest, Md5};

use super::message::random_hex;

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header is not a `Digest` challenge (e.g. `Basic`, or empty).
    #[error("not a Digest challenge")]
    NotDigest,
    /// The parameter list could not be parsed (unterminated quote, missing `=`, control bytes).
    #[error("malformed Digest challenge: {0}")]
    Malformed(&'static str),
    /// A parameter RFC 2617 §3.2.1 requires (`realm`, `nonce`) is absent.
    #[error("Digest challenge without {0}")]
    Missing(&'static str),
    /// The `algorithm` is neither MD5 nor MD5-sess (e.g. SHA-256 of RFC 8760).
    #[error("unsupported Digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The server offers `qop` values but not `auth` (e.g. only `auth-int`).
    #[error("unsupported Digest qop {0:?}")]
    UnsupportedQop(String),
    /// A 401/407 carried no challenge header at all.
    #[error("no Digest challenge in the response")]
    NoChallenge,
}

/// The hash algorithm of a challenge (RFC 2617 §3.2.1 `algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5`, also the meaning of an absent `algorithm`.
    Md5,
    /// `MD5-sess`: HA1 is additionally hashed with the nonce and cnonce (RFC 2617 §3.2.2.2).
    Md5Sess,
}

impl Algorithm {
    /// The token written in the `algorithm` parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
        }
    }
}

/// Which challenge a response carried, and so which header answers it (RFC 3261 §22.2, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// 401 Unauthorized with `WWW-Authenticate`, answered by `Authorization` (what DIDWW sends).
    Www,
    /// 407 Proxy Authentication Required with `Proxy-Authenticate`, answered by
    /// `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The kind for a response status: 401 → `Www`, 407 → `Proxy`, anything else `None`.
    pub const fn from_status(status: u16) -> Option<Self> {
        match status {
            401 => Some(ChallengeKind::Www),
            407 => Some(ChallengeKind::Proxy),
            _ => None,
        }
    }

    /// The header that answers this kind of challenge.
    pub const fn authorization_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// A parsed `Digest` challenge (RFC 2617 §3.2.1). Unknown parameters (`domain`, `charset`, …) are
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`, echoed in the answer; `out.didww.com` on the DIDWW trunk.
    pub realm: String,
    /// `nonce`, echoed in the answer.
    pub nonce: String,
    /// `opaque`, echoed unchanged when present.
    pub opaque: Option<String>,
    /// `algorithm`; MD5 when the challenge has none.
    pub algorithm: Algorithm,
    /// Whether the challenge named an `algorithm` at all (the answer then repeats it).
    pub algorithm_given: bool,
    /// The `qop` options, lower-cased, in the server's order; empty for an RFC 2069-style challenge.
    pub qop: Vec<String>,
    /// `stale=true`: the previous nonce expired but the credentials were right (RFC 2617 §3.2.1),
    /// so one retry with the new nonce is in order.
    pub stale: bool,
}

impl Challenge {
    /// Parses one `WWW-Authenticate` / `Proxy-Authenticate` value, tolerant of case, spacing,
    /// quoting and empty list elements; never panics.
    pub fn parse(header_value: &str) -> Result<Self, DigestError> {
        let value = header_value.trim();
        let scheme_end = value
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(value.len());
        let (scheme, rest) = value.split_at(scheme_end);
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(DigestError::NotDigest);
        }

        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut stale = None;
        for (name, value) in parse_params(rest)? {
            let slot = match name.to_ascii_lowercase().as_str() {
                "realm" => &mut realm,
                "nonce" => &mut nonce,
                "opaque" => &mut opaque,
                "algorithm" => &mut algorithm,
                "qop" => &mut qop,
                "stale" => &mut stale,
                _ => continue,
            };
            // The first occurrence wins; a repeated parameter is a server bug, not a reason to fail.
            if slot.is_none() {
                *slot = Some(value);
            }
        }

        let realm = realm.ok_or(DigestError::Missing("realm"))?;
        let nonce = nonce.ok_or(DigestError::Missing("nonce"))?;
        if nonce.is_empty() {
            return Err(DigestError::Missing("nonce"));
        }
        let algorithm_given = algorithm.is_some();
        let algorithm = match algorithm.as_deref().map(str::trim) {
            None => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5-sess") => Algorithm::Md5Sess,
            Some(other) => return Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        };
        let qop = qop
            .map(|list| {
                list.split(',')
                    .map(|q| q.trim().to_ascii_lowercase())
                    .filter(|q| !q.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let stale = stale.is_some_and(|s| s.trim().eq_ignore_ascii_case("true"));

        Ok(Challenge {
            realm,
            nonce,
            opaque,
            algorithm,
            algorithm_given,
            qop,
            stale,
        })
    }

    /// The `qop` the answer will use: `Some("auth")` when offered, `None` when the challenge has no
    /// `qop` (RFC 2069 compatibility), an error when only other options (`auth-int`) are offered.
    pub fn chosen_qop(&self) -> Result<Option<&'static str>, DigestError> {
        if self.qop.is_empty() {
            Ok(None)
        } else if self.qop.iter().any(|q| q == "auth") {
            Ok(Some("auth"))
        } else {
            Err(DigestError::UnsupportedQop(self.qop.join(",")))
        }
    }
}

/// Splits `name=value, name="quoted value", …` into pairs, unescaping quoted-pairs
/// (RFC 2617 §1.2 `#auth-param`, RFC 3261 §25.1 quoted-string).
fn parse_params(input: &str) -> Result<Vec<(String, String)>, DigestError> {
    let bytes = input.as_bytes();
    let mut params = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    loop {
        // Skip separators: linear whitespace (folded lines included) and empty list elements.
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n' | b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(DigestError::Malformed("expected a parameter name"));
        }
        let name = &input[name_start..i];
        skip_ws(&mut i);
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(DigestError::Malformed("parameter without '='"));
        }
        i += 1;
        skip_ws(&mut i);
        let value = if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut value = Vec::new();
            loop {
                match bytes.get(i) {
                    None => return Err(DigestError::Malformed("unterminated quoted string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        match bytes.get(i + 1) {
                            Some(&escaped) if escaped >= 0x20 && escaped != 0x7f => {
                                value.push(escaped)
                            }
                            _ => return Err(DigestError::Malformed("bad escape in quoted string")),
                        }
                        i += 2;
                    }
                    Some(&b) if b < 0x20 || b == 0x7f => {
                        return Err(DigestError::Malformed("control character in quoted string"))
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            String::from_utf8(value)
                .map_err(|_| DigestError::Malformed("quoted string is not UTF-8"))?
        } else {
            let start = i;
            while i < bytes.len() && is_token_byte(bytes[i]) {
                i += 1;
            }
            if i == start {
                return Err(DigestError::Malformed("parameter without a value"));
            }
            input[start..i].to_owned()
        };
        params.push((name.to_owned(), value));
        skip_ws(&mut i);
        match bytes.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return Err(DigestError::Malformed("expected ',' between parameters")),
        }
    }
    if params.is_empty() {
        return Err(DigestError::Malformed("no parameters"));
    }
    Ok(params)
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// The trunk's digest username and password. `Debug` masks the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `DIDWW_USERNAME`.
    pub username: String,
    /// `DIDWW_PASSWORD`; never logged.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Lower-case hex MD5 of `data`.
fn md5_hex(data: &str) -> String {
    hex::encode(Md5::digest(data.as_bytes()))
}

/// The inputs of one digest computation besides the credentials.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    /// The challenge's algorithm.
    pub algorithm: Algorithm,
    /// The challenge's realm.
    pub realm: &'a str,
    /// The challenge's nonce.
    pub nonce: &'a str,
    /// The request method (`INVITE`, `BYE`, …; `GET` in the RFC 2617 example).
    pub method: &'a str,
    /// The `digest-uri`: the Request-URI exactly as sent (RFC 3261 §22.4).
    pub uri: &'a str,
    /// Client nonce; used with a `qop` and always with MD5-sess.
    pub cnonce: &'a str,
    /// Nonce count (sent as 8 hex digits), used with a `qop`.
    pub nc: u32,
    /// `Some("auth")` for qop=auth, `None` for an RFC 2069-style challenge.
    pub qop: Option<&'a str>,
}

/// The 32-hex-digit `response` (RFC 2617 §3.2.2.1): with a qop,
/// `MD5(HA1:nonce:nc:cnonce:qop:HA2)`, else `MD5(HA1:nonce:HA2)`; `HA1 = MD5(user:realm:password)`
/// (for MD5-sess `MD5(that:nonce:cnonce)`, §3.2.2.2) and `HA2 = MD5(method:uri)` (§3.2.2.3).
pub fn compute_response(credentials: &Credentials, input: &DigestInput<'_>) -> String {
    let mut ha1 = md5_hex(&format!(
        "{}:{}:{}",
        credentials.username, input.realm, credentials.password
    ));
    if input.algorithm == Algorithm::Md5Sess {
        ha1 = md5_hex(&format!("{ha1}:{}:{}", input.nonce, input.cnonce));
    }
    let ha2 = md5_hex(&format!("{}:{}", input.method, input.uri));
    match input.qop {
        Some(qop) => md5_hex(&format!(
            "{ha1}:{}:{:08x}:{}:{qop}:{ha2}",
            input.nonce, input.nc, input.cnonce
        )),
        None => md5_hex(&format!("{ha1}:{}:{ha2}", input.nonce)),
    }
}

/// Writes `s` as an RFC 3261 §25.1 quoted-string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One credentials header to add to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    /// `Authorization` or `Proxy-Authorization`.
    pub name: &'static str,
    /// The `Digest username="…", …` value.
    pub value: String,
}

/// Answers `challenge` for one request (RFC 3261 §22.4 `Authorization` syntax, RFC 2617 §3.2.2).
/// `nc` and `cnonce` are the caller's; [`DigestSession`] manages them.
pub fn authorization_value(
    credentials: &Credentials,
    challenge: &Challenge,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, DigestError> {
    let qop = challenge.chosen_qop()?;
    let response = compute_response(
        credentials,
        &DigestInput {
            algorithm: challenge.algorithm,
            realm: &challenge.realm,
            nonce: &challenge.nonce,
            method,
            uri,
            cnonce,
            nc,
            qop,
        },
    );
    let mut value = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\"",
        quoted(&credentials.username),
        quoted(&challenge.realm),
        quoted(&challenge.nonce),
        quoted(uri),
    );
    if challenge.algorithm_given || challenge.algorithm != Algorithm::Md5 {
        value.push_str(", algorithm=");
        value.push_str(challenge.algorithm.as_str());
    }
    if qop.is_some() || challenge.algorithm == Algorithm::Md5Sess {
        value.push_str(", cnonce=");
        value.push_str(&quoted(cnonce));
    }
    if let Some(opaque) = &challenge.opaque {
        value.push_str(", opaque=");
        value.push_str(&quoted(opaque));
    }
    if let Some(qop) = qop {
        value.push_str(&format!(", qop={qop}, nc={nc:08x}"));
    }
    Ok(value)
}

/// What to do after a 401/407.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeVerdict {
    /// Re-send the request (new CSeq, new branch) with [`DigestSession::authorize`]'s headers.
    Retry,
    /// Give up: the credentials were refused. The call fails with the response's status code.
    Rejected,
}

/// The latest challenge of one kind and the nonce count used with its nonce.
#[derive(Debug, Clone)]
struct Slot {
    challenge: Challenge,
    nc: u32,
}

/// Digest state for one call: the latest challenge of each kind (401 and 407 may both occur on one
/// path) and the nonce count per nonce (RFC 2617 §3.2.2 `nonce-count`).
#[derive(Debug, Clone)]
pub struct DigestSession {
    credentials: Credentials,
    www: Option<Slot>,
    proxy: Option<Slot>,
}

impl DigestSession {
    /// A session with no challenge yet.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            www: None,
            proxy: None,
        }
    }

    /// Takes the challenges of a 401/407 (every `WWW-Authenticate` or `Proxy-Authenticate` value,
    /// in order; the first usable Digest one wins) and decides whether to retry.
    ///
    /// `retries_so_far` is how many times the challenged request has already been re-sent with
    /// credentials (0 for the first challenge). The first challenge is always answered; after that
    /// only a `stale=true` challenge is, and only once (RFC 2617 §3.2.1 `stale`), so wrong
    /// credentials end in [`ChallengeVerdict::Rejected`] instead of a loop.
    pub fn on_challenge(
        &mut self,
        kind: ChallengeKind,
        header_values: &[String],
        retries_so_far: u32,
    ) -> Result<ChallengeVerdict, DigestError> {
        let challenge = Self::first_usable(header_values)?;
        let retry = retries_so_far == 0 || (retries_so_far == 1 && challenge.stale);
        if !retry {
            return Ok(ChallengeVerdict::Rejected);
        }
        let slot = match kind {
            ChallengeKind::Www => &mut self.www,
            ChallengeKind::Proxy => &mut self.proxy,
        };
        // nc counts per nonce: a new nonce starts again at 1, the same nonce continues.
        let nc = match slot {
            Some(old) if old.challenge.nonce == challenge.nonce => old.nc,
            _ => 0,
        };
        *slot = Some(Slot { challenge, nc });
        Ok(ChallengeVerdict::Retry)
    }

    /// The first challenge in `header_values` this module can answer; otherwise the error of the
    /// first one that failed.
    fn first_usable(header_values: &[String]) -> Result<Challenge, DigestError> {
        let mut first_error = None;
        for value in header_values {
            match Challenge::parse(value).and_then(|c| c.chosen_qop().map(|_| c)) {
                Ok(challenge) => return Ok(challenge),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(DigestError::NoChallenge))
    }

    /// Whether any challenge has been received.
    pub fn has_challenge(&self) -> bool {
        self.www.is_some() || self.proxy.is_some()
    }

    /// The credentials headers for a request (`method`, Request-URI `uri`), one per stored
    /// challenge, each with a fresh random cnonce and the next `nc`. Empty before any challenge.
    pub fn authorize(&mut self, method: &str, uri: &str) -> Vec<AuthorizationHeader> {
        let cnonce = random_hex(8);
        self.authorize_with_cnonce(method, uri, &cnonce)
    }

    /// [`Self::authorize`] with a given cnonce (deterministic, for tests and test vectors).
    pub fn authorize_with_cnonce(
        &mut self,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Vec<AuthorizationHeader> {
        let mut headers = Vec::new();
        for (kind, slot) in [
            (ChallengeKind::Www, &mut self.www),
            (ChallengeKind::Proxy, &mut self.proxy),
        ] {
            let Some(slot) = slot else { continue };
            let nc = slot.nc.wrapping_add(1);
            // Stored challenges passed `chosen_qop` in `on_challenge`, so this cannot fail.
            if let Ok(value) =
                authorization_value(&self.credentials, &slot.challenge, method, uri, cnonce, nc)
            {
                slot.nc = nc;
                headers.push(AuthorizationHeader {
                    name: kind.authorization_header(),
                    value,
                });
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc2617_credentials() -> Credentials {
        Credentials {
            username: "Mufasa".into(),
            password: "Circle Of Life".into(),
        }
    }

    fn didww_credentials() -> Credentials {
        Credentials {
            username: "k3x9q2m7zp".into(),
            password: "s3cr3t-Pa55".into(),
        }
    }

    const DIDWW_NONCE: &str = "Zm9vYmFyLW5vbmNlLTE3MDAwMDAwMDA=";
    const DIDWW_URI: &str = "sip:15555550123@out.didww.com";

    /// Pulls `name=value` (quotes removed) out of an Authorization value, for assertions.
    fn param(header: &str, name: &str) -> Option<String> {
        parse_params(header.strip_prefix("Digest ")?)
            .ok()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    #[test]
    fn rfc2617_section_3_5_example() {
        let challenge = Challenge::parse(
            "Digest\n realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(challenge.realm, "testrealm@host.com");
        assert_eq!(challenge.qop, vec!["auth", "auth-int"]);
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        assert!(!challenge.algorithm_given);

        let response = compute_response(
            &rfc2617_credentials(),
            &DigestInput {
                algorithm: Algorithm::Md5,
                realm: "testrealm@host.com",
                nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                method: "GET",
                uri: "/dir/index.html",
                cnonce: "0a4f113b",
                nc: 1,
                qop: Some("auth"),
            },
        );
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");

        let value = authorization_value(
            &rfc2617_credentials(),
            &challenge,
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        )
        .unwrap();
        assert_eq!(
            value,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", cnonce=\"0a4f113b\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001"
        );
    }

    // Expected values computed independently with Python's hashlib:
    //   ha1 = md5("k3x9q2m7zp:out.didww.com:s3cr3t-Pa55")  = 1285ea5129cf03aed0158884011df346
    //   ha2 = md5("INVITE:sip:15555550123@out.didww.com")  = f393d1883e3819030183c9d5f0ce7683
    //   md5(ha1:nonce:00000001:6d9a1c3f0b2e4a57:auth:ha2)   = d6ccd2b4401bd0005100a867d3c802c3
    //   same with nc 00000002 and method BYE               = 82dd3f5c8d8b969acfc30b08f82f57fa
    //   md5(ha1:nonce:ha2) (no qop)                        = 8764fa27c9b4522b59a21a7189a729d4
    //   MD5-sess, ha1' = md5(ha1:nonce:cnonce), qop=auth   = 0075756db532417cff518e36cdd0a2e6
    #[test]
    fn sip_invite_vector_with_qop_and_nc_progression() {
        let mut session = DigestSession::new(didww_credentials());
        let challenge = format!(
            "Digest realm=\"out.didww.com\", nonce=\"{DIDWW_NONCE}\", qop=\"auth\", algorithm=MD5"
        );
        assert_eq!(
            session
                .on_challenge(ChallengeKind::Www, &[challenge], 0)
                .unwrap(),
            ChallengeVerdict::Retry
        );
        let headers = session.authorize_with_cnonce("INVITE", DIDWW_URI, "6d9a1c3f0b2e4a57");
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].name, "Authorization");
        let v = &headers[0].value;
        assert_eq!(
            param(v, "response").as_deref(),
            Some("d6ccd2b4401bd0005100a867d3c802c3")
        );
        assert_eq!(param(v, "nc").as_deref(), Some("00000001"));
        assert_eq!(param(v, "qop").as_deref(), Some("auth"));
        assert_eq!(param(v, "algorithm").as_deref(), Some("MD5"));
        assert_eq!(param(v, "uri").as_deref(), Some(DIDWW_URI));
        assert_eq!(param(v, "username").as_deref(), Some("k3x9q2m7zp"));
        assert!(!v.contains("s3cr3t"));

        // Same nonce, next request: nc advances to 2.
        let headers = session.authorize_with_cnonce("BYE", DIDWW_URI, "6d9a1c3f0b2e4a57");
        assert_eq!(param(&headers[0].value, "nc").as_deref(), Some("00000002"));
        assert_eq!(
            param(&headers[0].value, "response").as_deref(),
            Some("82dd3f5c8d8b969acfc30b08f82f57fa")
        );
    }

    #[test]
    fn sip_vector_without_qop_and_md5_sess() {
        let creds = didww_credentials();
        let base = DigestInput {
            algorithm: Algorithm::Md5,
            realm: "out.didww.com",
            nonce: DIDWW_NONCE,
            method: "INVITE",
            uri: DIDWW_URI,
            cnonce: "6d9a1c3f0b2e4a57",
            nc: 1,
            qop: None,
        };
        assert_eq!(
            compute_response(&creds, &base),
            "8764fa27c9b4522b59a21a7189a729d4"
        );
        let sess = DigestInput {
            algorithm: Algorithm::Md5Sess,
            qop: Some("auth"),
            ..base
        };
        assert_eq!(
            compute_response(&creds, &sess),
            "0075756db532417cff518e36cdd0a2e6"
        );

        // An RFC 2069-style challenge: no qop, cnonce or nc in the answer.
        let challenge = Challenge::parse(&format!(
            "Digest realm=\"out.didww.com\",nonce=\"{DIDWW_NONCE}\""
        ))
        .unwrap();
        let value = authorization_value(&creds, &challenge, "INVITE", DIDWW_URI, "x", 1).unwrap();
        assert_eq!(
            param(&value, "response").as_deref(),
            Some("8764fa27c9b4522b59a21a7189a729d4")
        );
        assert!(param(&value, "qop").is_none());
        assert!(param(&value, "nc").is_none());
        assert!(param(&value, "cnonce").is_none());
        assert!(param(&value, "algorithm").is_none());
    }

    #[test]
    fn parsing_tolerates_case_spacing_and_quoting() {
        let c = Challenge::parse(
            "  digest   REALM = \"out.didww.com\" ,, Nonce=abc123 , QOP=\"Auth-Int , AUTH\", \
             algorithm = md5-SESS, stale = TRUE, opaque=\"a\\\"b\", domain=\"sip:x\"",
        )
        .unwrap();
        assert_eq!(c.realm, "out.didww.com");
        assert_eq!(c.nonce, "abc123");
        assert_eq!(c.qop, vec!["auth-int", "auth"]);
        assert_eq!(c.algorithm, Algorithm::Md5Sess);
        assert!(c.stale);
        assert_eq!(c.opaque.as_deref(), Some("a\"b"));
        assert_eq!(c.chosen_qop().unwrap(), Some("auth"));

        let c = Challenge::parse("Digest realm=\"a, b\", nonce=\"n\", qop=auth").unwrap();
        assert_eq!(c.realm, "a, b");
        assert_eq!(c.qop, vec!["auth"]);
        assert!(!c.stale);
    }

    #[test]
    fn stale_parsing() {
        let base = "Digest realm=\"out.didww.com\", nonce=\"n2\", qop=\"auth\"";
        assert!(
            Challenge::parse(&format!("{base}, stale=true"))
                .unwrap()
                .stale
        );
        assert!(
            Challenge::parse(&format!("{base}, stale=\"TRUE\""))
                .unwrap()
                .stale
        );
        assert!(
            !Challenge::parse(&format!("{base}, stale=false"))
                .unwrap()
                .stale
        );
        assert!(
            !Challenge::parse(&format!("{base}, stale=yes"))
                .unwrap()
                .stale
        );
        assert!(!Challenge::parse(base).unwrap().stale);
    }

    #[test]
    fn unknown_algorithm_and_qop_are_errors() {
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256"),
            Err(DigestError::UnsupportedAlgorithm("SHA-256".into()))
        );
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").unwrap();
        assert!(matches!(
            c.chosen_qop(),
            Err(DigestError::UnsupportedQop(q)) if q == "auth-int"
        ));
    }

    #[test]
    fn malformed_challenges_are_errors_not_panics() {
        let cases = [
            "",
            "Digest",
            "Digest ",
            "Basic realm=\"r\"",
            "Digest realm=\"r\"",
            "Digest nonce=\"n\"",
            "Digest realm=\"r\", nonce=\"\"",
            "Digest realm=\"unterminated, nonce=\"n\"",
            "Digest realm=\"r\" nonce=\"n\"",
            "Digest realm, nonce=\"n\"",
            "Digest realm=, nonce=\"n\"",
            "Digest =\"r\"",
            "Digest realm=\"r\\",
            "Digest realm=\"a\rb\", nonce=\"n\"",
            "Digest realm=\"r\", nonce=\"n\", \u{e9}=1",
            "Digest \u{0}",
            "DigestRealm=\"r\"",
        ];
        for case in cases {
            assert!(Challenge::parse(case).is_err(), "{case:?} should not parse");
        }
        // Every prefix of a valid challenge either parses or errors, and never panics.
        let full = "Digest realm=\"out.didww.com\", nonce=\"a\\\"b\", qop=\"auth\", stale=true";
        for end in 0..=full.len() {
            let _ = Challenge::parse(&full[..end]);
        }
    }

    #[test]
    fn wrong_credentials_are_rejected_after_one_retry() {
        let mut session = DigestSession::new(didww_credentials());
        let first = vec!["Digest realm=\"out.didww.com\", nonce=\"n1\", qop=\"auth\"".to_owned()];
        assert_eq!(
            session.on_challenge(ChallengeKind::Www, &first, 0).unwrap(),
            ChallengeVerdict::Retry
        );
        let _ = session.authorize_with_cnonce("INVITE", DIDWW_URI, "c");
        // Challenged again with credentials, not stale: the password is wrong.
        let again = vec!["Digest realm=\"out.didww.com\", nonce=\"n2\", qop=\"auth\"".to_owned()];
        assert_eq!(
            session.on_challenge(ChallengeKind::Www, &again, 1).unwrap(),
            ChallengeVerdict::Rejected
        );
    }

    #[test]
    fn stale_challenge_is_retried_once_with_a_fresh_nc() {
        let mut session = DigestSession::new(didww_credentials());
        let first = vec!["Digest realm=\"out.didww.com\", nonce=\"n1\", qop=\"auth\"".to_owned()];
        session.on_challenge(ChallengeKind::Www, &first, 0).unwrap();
        let _ = session.authorize_with_cnonce("INVITE", DIDWW_URI, "c");
        let _ = session.authorize_with_cnonce("INVITE", DIDWW_URI, "c");

        let stale = vec![
            "Digest realm=\"out.didww.com\", nonce=\"n2\", qop=\"auth\", stale=true".to_owned(),
        ];
        assert_eq!(
            session.on_challenge(ChallengeKind::Www, &stale, 1).unwrap(),
            ChallengeVerdict::Retry
        );
        let headers = session.authorize_with_cnonce("INVITE", DIDWW_URI, "c");
        assert_eq!(param(&headers[0].value, "nonce").as_deref(), Some("n2"));
        assert_eq!(param(&headers[0].value, "nc").as_deref(), Some("00000001"));

        // A second stale challenge for the same request is not retried.
        assert_eq!(
            session.on_challenge(ChallengeKind::Www, &stale, 2).unwrap(),
            ChallengeVerdict::Rejected
        );
    }

    #[test]
    fn first_usable_challenge_wins_and_proxy_uses_its_own_header() {
        let mut session = DigestSession::new(didww_credentials());
        assert!(session.authorize("INVITE", DIDWW_URI).is_empty());
        assert!(!session.has_challenge());
        let values = vec![
            "Digest realm=\"p\", nonce=\"x\", algorithm=SHA-256".to_owned(),
            "Digest realm=\"p\", nonce=\"y\", algorithm=MD5, qop=\"auth\"".to_owned(),
        ];
        assert_eq!(
            session
                .on_challenge(ChallengeKind::Proxy, &values, 0)
                .unwrap(),
            ChallengeVerdict::Retry
        );
        let headers = session.authorize("INVITE", DIDWW_URI);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].name, "Proxy-Authorization");
        assert_eq!(param(&headers[0].value, "nonce").as_deref(), Some("y"));
        let cnonce = param(&headers[0].value, "cnonce").unwrap();
        assert_eq!(cnonce.len(), 16);
        assert!(cnonce.bytes().all(|b| b.is_ascii_hexdigit()));

        assert_eq!(
            session.on_challenge(ChallengeKind::Www, &[], 0),
            Err(DigestError::NoChallenge)
        );
        assert_eq!(
            session.on_challenge(ChallengeKind::Www, &["Basic realm=\"x\"".to_owned()], 0),
            Err(DigestError::NotDigest)
        );
    }

    #[test]
    fn values_with_quotes_are_escaped_and_password_is_masked() {
        let creds = Credentials {
            username: "we\"ird".into(),
            password: "pw".into(),
        };
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=auth").unwrap();
        let v = authorization_value(&creds, &c, "INVITE", "sip:a@b", "c", 1).unwrap();
        assert!(v.starts_with("Digest username=\"we\\\"ird\", "));
        assert_eq!(param(&v, "username").as_deref(), Some("we\"ird"));
        assert!(!format!("{creds:?}").contains("pw"));
        assert_eq!(ChallengeKind::from_status(401), Some(ChallengeKind::Www));
        assert_eq!(ChallengeKind::from_status(407), Some(ChallengeKind::Proxy));
        assert_eq!(ChallengeKind::from_status(403), None);
    }
}
