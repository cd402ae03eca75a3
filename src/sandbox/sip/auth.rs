//! The trunk's side of SIP digest authentication (RFC 3261 §22, RFC 2617 §3.2): issuing nonces and
//! challenges, reading the `Authorization` / `Proxy-Authorization` header a UA answers with and
//! checking it with `actors::sip::digest::compute_response`, so the gateway's digest code is
//! verified against an independent reader rather than against itself.
//!
//! `actors::sip::digest` only parses challenges (`Challenge::parse` needs realm and nonce and
//! ignores `username`/`uri`/`response`), so the credentials parser lives here.

use std::collections::HashMap;

use actors::sip::digest::{compute_response, Algorithm, Credentials, DigestInput};
use ring::rand::{SecureRandom, SystemRandom};

/// The parameters of a `Digest` credentials header (RFC 2617 §3.2.2); unknown ones are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
}

/// Reads `Digest k=v, k="v", …`; `None` for another scheme or a malformed list. Quoted values may
/// contain commas and `\"` escapes.
pub(super) fn parse_credentials(value: &str) -> Option<DigestCredentials> {
    let value = value.trim();
    let (scheme, mut rest) = value.split_at(value.find(char::is_whitespace)?);
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut creds = DigestCredentials::default();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest.split_once('=')?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return None;
        }
        let after = after.trim_start();
        let (param, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            read_quoted(quoted)?
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        rest = remaining;
        let slot = match name.to_ascii_lowercase().as_str() {
            "username" => &mut creds.username,
            "realm" => &mut creds.realm,
            "nonce" => &mut creds.nonce,
            "uri" => &mut creds.uri,
            "response" => &mut creds.response,
            "algorithm" => creds.algorithm.get_or_insert_with(String::new),
            "cnonce" => creds.cnonce.get_or_insert_with(String::new),
            "qop" => creds.qop.get_or_insert_with(String::new),
            "nc" => creds.nc.get_or_insert_with(String::new),
            _ => continue,
        };
        *slot = param;
    }
    Some(creds)
}

/// Reads a quoted-string body after its opening quote: (unescaped value, text after the closing
/// quote); `None` when it is unterminated.
fn read_quoted(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &text[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

/// A fresh nonce: 128 random bits, hex. Falls back to a fresh Call-ID-style UUID if the OS
/// generator fails (uniqueness is all a test double needs).
pub(super) fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(_) => uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// The challenge header value, as DIDWW writes it (reference §4.4): realm, nonce, `qop="auth"`,
/// `algorithm=MD5`, plus `stale=true` when the previous nonce is refused as stale.
pub(super) fn challenge_value(realm: &str, nonce: &str, stale: bool) -> String {
    let mut value =
        format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5");
    if stale {
        value.push_str(", stale=true");
    }
    value
}

/// Why credentials were refused (kept in the call record for test failure messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("credentials header is not a Digest parameter list")]
    Malformed,
    #[error("unknown username {0:?}")]
    Username(String),
    #[error("realm {0:?} is not ours")]
    Realm(String),
    #[error("nonce {0:?} was not issued for this call")]
    Nonce(String),
    #[error("uri {0:?} differs from the Request-URI")]
    Uri(String),
    #[error("algorithm {0:?} is not MD5")]
    Algorithm(String),
    #[error("qop must be auth with nc and cnonce")]
    Qop,
    #[error("nc {0:?} does not increase for this nonce")]
    NonceCount(String),
    #[error("wrong response (password)")]
    Response,
}

/// The credentials the trunk accepts and the nonces it issued for one call, with the highest `nc`
/// seen per nonce (RFC 2617 §3.2.2: a replayed `nc` is refused).
#[derive(Debug)]
pub(super) struct Verifier {
    credentials: Credentials,
    realm: String,
    nonces: HashMap<String, u32>,
}

impl Verifier {
    pub(super) fn new(credentials: Credentials, realm: String) -> Self {
        Self {
            credentials,
            realm,
            nonces: HashMap::new(),
        }
    }

    /// Issues a nonce and returns the challenge header value for it.
    pub(super) fn challenge(&mut self, stale: bool) -> String {
        let nonce = new_nonce();
        let value = challenge_value(&self.realm, &nonce, stale);
        self.nonces.insert(nonce, 0);
        value
    }

    /// Checks the credentials headers of a request (`method`, Request-URI `uri`); the first one
    /// for our realm counts.
    pub(super) fn verify(
        &mut self,
        headers: &[String],
        method: &str,
        uri: &str,
    ) -> Result<(), AuthError> {
        let parsed: Vec<Option<DigestCredentials>> =
            headers.iter().map(|h| parse_credentials(h)).collect();
        let creds = match parsed.iter().flatten().find(|c| c.realm == self.realm) {
            Some(c) => c,
            None => {
                return Err(match parsed.first() {
                    None => AuthError::Missing,
                    Some(None) => AuthError::Malformed,
                    Some(Some(c)) => AuthError::Realm(c.realm.clone()),
                })
            }
        };
        if creds.username != self.credentials.username {
            return Err(AuthError::Username(creds.username.clone()));
        }
        let Some(&last_nc) = self.nonces.get(&creds.nonce) else {
            return Err(AuthError::Nonce(creds.nonce.clone()));
        };
        if creds.uri != uri {
            return Err(AuthError::Uri(creds.uri.clone()));
        }
        if let Some(a) = creds
            .algorithm
            .as_deref()
            .filter(|a| !a.eq_ignore_ascii_case("MD5"))
        {
            return Err(AuthError::Algorithm(a.to_owned()));
        }
        let (Some("auth"), Some(nc_text), Some(cnonce)) = (
            creds.qop.as_deref(),
            creds.nc.as_deref(),
            creds.cnonce.as_deref().filter(|c| !c.is_empty()),
        ) else {
            return Err(AuthError::Qop);
        };
        let nc = u32::from_str_radix(nc_text, 16).map_err(|_| AuthError::Qop)?;
        if nc <= last_nc {
            return Err(AuthError::NonceCount(nc_text.to_owned()));
        }
        let expected = compute_response(
            &self.credentials,
            &DigestInput {
                algorithm: Algorithm::Md5,
                realm: &self.realm,
                nonce: &creds.nonce,
                method,
                uri,
                cnonce,
                nc,
                qop: Some("auth"),
            },
        );
        if !expected.eq_ignore_ascii_case(&creds.response) {
            return Err(AuthError::Response);
        }
        self.nonces.insert(creds.nonce.clone(), nc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::sip::digest::{ChallengeKind, ChallengeVerdict, DigestSession};

    const URI: &str = "sip:15555550123@127.0.0.1:5099";

    fn creds(password: &str) -> Credentials {
        Credentials {
            username: "trunkuser1".into(),
            password: password.into(),
        }
    }

    /// What the gateway's own digest code sends for a challenge of ours.
    fn answer(challenge: &str, password: &str, method: &str, uri: &str) -> Vec<String> {
        let mut session = DigestSession::new(creds(password));
        let verdict = session
            .on_challenge(ChallengeKind::Www, &[challenge.to_owned()], 0)
            .unwrap();
        assert_eq!(verdict, ChallengeVerdict::Retry);
        session
            .authorize(method, uri)
            .into_iter()
            .map(|h| h.value)
            .collect()
    }

    #[test]
    fn accepts_the_gateway_digest_and_refuses_replays_and_wrong_passwords() {
        let mut v = Verifier::new(creds("s3cret"), "out.didww.com".into());
        let challenge = v.challenge(false);
        assert!(challenge.starts_with("Digest realm=\"out.didww.com\", nonce=\""));
        assert!(challenge.ends_with("qop=\"auth\", algorithm=MD5"));
        // A refused answer does not use up its nc.
        let bad = answer(&challenge, "guess", "INVITE", URI);
        assert_eq!(v.verify(&bad, "INVITE", URI), Err(AuthError::Response));
        let good = answer(&challenge, "s3cret", "INVITE", URI);
        assert_eq!(v.verify(&good, "INVITE", URI), Ok(()));
        // The same nc again is a replay.
        assert!(matches!(
            v.verify(&good, "INVITE", URI),
            Err(AuthError::NonceCount(_))
        ));
        assert!(matches!(
            v.verify(&good, "INVITE", "sip:other@127.0.0.1"),
            Err(AuthError::Uri(_))
        ));
        assert_eq!(v.verify(&[], "INVITE", URI), Err(AuthError::Missing));
        assert_eq!(
            v.verify(&["Basic Zm9vOmJhcg==".into()], "INVITE", URI),
            Err(AuthError::Malformed)
        );
        // A nonce another call (another verifier) issued is unknown here.
        let foreign = Verifier::new(creds("s3cret"), "out.didww.com".into()).challenge(true);
        assert!(foreign.ends_with(", stale=true"));
        let theirs = answer(&foreign, "s3cret", "INVITE", URI);
        assert!(matches!(
            v.verify(&theirs, "INVITE", URI),
            Err(AuthError::Nonce(_))
        ));
    }

    #[test]
    fn parser_reads_quotes_escapes_and_tokens() {
        let c = parse_credentials(
            "Digest username=\"a\\\"b\", realm=\"out.didww.com\",nonce=\"n,1\", \
             uri=\"sip:1@h\", response=\"ABC\", qop=auth, nc=00000001, cnonce=\"c\", \
             algorithm=MD5, opaque=\"x\"",
        )
        .unwrap();
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.nonce, "n,1");
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.algorithm.as_deref(), Some("MD5"));
        for bad in [
            "",
            "Digest",
            "Digest username=\"open",
            "Digest =x",
            "Basic a=b",
        ] {
            assert_eq!(parse_credentials(bad), None, "{bad:?}");
        }
    }
}
