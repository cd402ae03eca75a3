//! SIP messages on the wire (RFC 3261 §7, §20, §25): the requests of an outgoing call (INVITE,
//! ACK, CANCEL, BYE), the OPTIONS keepalive, responses to the requests DIDWW sends us, and dialog
//! state ([`Dialog`]: route set, remote target, tags, CSeq) following §12. Incoming datagrams are
//! read by [`parse`](super::parse) (rsip underneath); its types are re-exported here.
//!
//! Messages are written here rather than through rsip's serialiser, which rewrites URI parameters
//! (`transport=udp` → `UDP`) and cannot hold IPv6 hosts in typed URIs: a Record-Route or Contact
//! must go back byte for byte as the carrier sent it. Everything is plain strings and numbers, so
//! no rsip type leaves `sip/`.
//!
//! Sans-IO: builders return the bytes to send; the caller owns sockets, timers and retransmission.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use ring::rand::{SecureRandom, SystemRandom};

use super::digest::AuthorizationHeader;
pub use super::parse::{parse_datagram, Incoming, Request, Response};

/// Prefix of every RFC 3261 branch (§8.1.1.7), marking it as globally unique.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// Max-Forwards of every request we originate (RFC 3261 §8.1.1.6).
pub const MAX_FORWARDS: u32 = 70;

/// The methods this user agent understands, sent in `Allow` (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

/// `User-Agent` / `Server` value: `otp-gateway/<crate version>`.
pub const USER_AGENT: &str = concat!("otp-gateway/", env!("CARGO_PKG_VERSION"));

/// Largest CSeq number allowed (RFC 3261 §8.1.1.5: less than 2**31).
pub(super) const MAX_CSEQ: u32 = (1 << 31) - 1;

/// Why a datagram could not be read or a message not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nothing but whitespace (e.g. a CRLF keepalive, RFC 5626 §4.4.1): ignore silently.
    #[error("empty datagram")]
    Empty,
    /// The start line and headers are not UTF-8.
    #[error("SIP headers are not UTF-8")]
    NotUtf8,
    /// No blank line ends the headers.
    #[error("no end of the header section")]
    Unterminated,
    /// The request or status line is malformed.
    #[error("malformed start line")]
    StartLine,
    /// A header line has no `name:` part, or holds a control character.
    #[error("malformed header line")]
    HeaderLine,
    /// rsip could not read the message.
    #[error("SIP syntax error (rsip cannot read the message)")]
    Syntax,
    /// A header RFC 3261 §8.1.1 requires is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but unusable.
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    /// Content-Length promises more bytes than the datagram has (RFC 3261 §18.3).
    #[error("body shorter than Content-Length")]
    Truncated,
    /// A phone number is not 1–15 digits after an optional `+`.
    #[error("not an E.164 number: {0:?}")]
    InvalidNumber(String),
    /// A host (or host:port) is not an IP address or DNS name.
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// A URI has no host we can send to.
    #[error("invalid SIP URI {0:?}")]
    InvalidUri(String),
}

// ---------------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------------

/// `bytes` random bytes as lower-case hex, from the OS generator. Should that ever fail, falls back
/// to a hash of the clock and a counter: tags, branches and cnonces need uniqueness, not secrecy.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if SystemRandom::new().fill(&mut buf).is_ok() {
        return hex::encode(buf);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        out.push_str(&hex::encode(Md5::digest(
            format!("{nanos}:{count}").as_bytes(),
        )));
    }
    out.truncate(bytes * 2);
    out
}

/// A fresh Via branch: the magic cookie plus 64 random bits (RFC 3261 §8.1.1.7).
pub fn new_branch() -> String {
    format!("{BRANCH_MAGIC_COOKIE}{}", random_hex(8))
}

/// A fresh From/To tag, 64 random bits (RFC 3261 §19.3).
pub fn new_tag() -> String {
    random_hex(8)
}

/// A fresh Call-ID: a random UUID v4 (RFC 3261 §8.1.1.4), like the DIDWW example
/// (`5b0e6f3a-9c41-4d2b-…`).
pub fn new_call_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Normalises a phone number to E.164 digits without `+` (what DIDWW expects in SIP URIs,
/// reference §4.5): an optional leading `+`, then 1–15 ASCII digits; spaces, dashes, dots and
/// parentheses are dropped. Anything else is rejected, so a number can never inject into a header.
pub fn e164_digits(number: &str) -> Result<String, Error> {
    let trimmed = number.trim();
    let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(Error::InvalidNumber(number.to_owned())),
        }
    }
    if digits.is_empty() || digits.len() > 15 {
        return Err(Error::InvalidNumber(number.to_owned()));
    }
    Ok(digits)
}

/// The caller ID for a destination: `us_canada` (`DIDWW_CALLER_ID_US_CANADA`) when set and the
/// destination is in country code 1, else `default` (`DIDWW_CALLER_ID`). Caller-ID routes (spec
/// §10) are applied by the caller, after this.
pub fn caller_id_for<'a>(
    destination: &str,
    default: &'a str,
    us_canada: Option<&'a str>,
) -> &'a str {
    let digits = destination.trim().trim_start_matches('+');
    match us_canada {
        Some(us) if digits.starts_with('1') && !us.trim().is_empty() => us,
        _ => default,
    }
}

// ---------------------------------------------------------------------------------------------
// Hosts and URIs
// ---------------------------------------------------------------------------------------------

/// A host with an optional port, as in `DIDWW_SIP_HOST` (`nyc.us.out.didww.com`,
/// `46.19.209.44:5060`, `[2a01:ad00:1:1::44]:5060`). The host is stored without brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// DNS name or IP address literal (IPv6 without brackets).
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let invalid = || Error::InvalidHost(text.to_owned());
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
            host.parse::<Ipv6Addr>().map_err(|_| invalid())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(invalid)?),
            };
            (host, port)
        } else if text.parse::<Ipv6Addr>().is_ok() {
            (text, None)
        } else {
            match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return Err(invalid()),
            },
        };
        let is_ip = host.parse::<IpAddr>().is_ok();
        let is_dns = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !host.starts_with(['-', '.']);
        if !is_ip && !is_dns {
            return Err(invalid());
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }

    /// The host as it appears in a SIP URI: IPv6 in brackets.
    pub fn host_for_uri(&self) -> String {
        if self.host.parse::<Ipv6Addr>().is_ok() {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host_for_uri())?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// An IP address as it appears in a SIP URI or Via: IPv6 in brackets (RFC 3261 §25.1).
fn ip_for_uri(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The host and port a SIP URI (`sip:user@host:port;params`, optionally in `<>`) points at —
/// where a request to it is sent (RFC 3263 without DNS: the caller resolves names).
pub fn uri_host_port(uri: &str) -> Result<HostPort, Error> {
    let invalid = || Error::InvalidUri(uri.to_owned());
    let inner = uri.trim();
    let inner = match (inner.find('<'), inner.find('>')) {
        (Some(open), Some(close)) if open < close => &inner[open + 1..close],
        _ => inner,
    };
    let (scheme, rest) = inner.split_once(':').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return Err(invalid());
    }
    let rest = rest.split('?').next().unwrap_or_default();
    let host_part = match rest.rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let end = if host_part.starts_with('[') {
        host_part.find(']').map(|i| i + 1).ok_or_else(invalid)?
    } else {
        host_part.find([':', ';']).unwrap_or(host_part.len())
    };
    let (host, after) = host_part.split_at(end);
    let port = after
        .strip_prefix(':')
        .map(|p| p.split(';').next().unwrap_or_default());
    let text = match port {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    HostPort::parse(&text).map_err(|_| invalid())
}

/// Whether a Route/Record-Route entry's URI carries `lr` (loose routing, RFC 3261 §19.1.1).
fn is_loose_route(entry: &str) -> bool {
    let uri = angle_uri(entry);
    let params = uri.split('?').next().unwrap_or_default();
    params.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("lr")
    })
}

/// The URI of a name-addr (`"x" <sip:…>;p`) or addr-spec (`sip:…;p`, whose `;` parameters belong
/// to the header, RFC 3261 §20.10).
pub(super) fn angle_uri(value: &str) -> &str {
    match split_name_addr(value) {
        (Some(uri), _) => uri,
        (None, _) => value.split(';').next().unwrap_or_default().trim(),
    }
}

/// Splits a name-addr into (URI inside `<>`, header parameters after `>`); for an addr-spec,
/// (None, parameters after the first `;`). Quoted display names may contain `<`, `;` or `,`.
fn split_name_addr(value: &str) -> (Option<&str>, &str) {
    let bytes = value.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b'<' if !in_quotes => {
                return match value[i + 1..].find('>') {
                    Some(close) => (
                        Some(value[i + 1..i + 1 + close].trim()),
                        &value[i + 2 + close..],
                    ),
                    None => (None, ""),
                };
            }
            _ => {}
        }
        i += 1;
    }
    match value.find(';') {
        Some(semi) => (None, &value[semi..]),
        None => (None, ""),
    }
}

/// The value of parameter `name` in `;a=b;c` (case-insensitive name, SWS tolerated, quotes
/// removed); `Some("")` for a parameter without value.
pub(super) fn param_value(params: &str, name: &str) -> Option<String> {
    params.split(';').skip(1).find_map(|p| {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n, v),
            None => (p, ""),
        };
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The `tag` of a From/To value.
pub(super) fn tag_of(value: &str) -> Option<String> {
    let (_, params) = split_name_addr(value);
    param_value(params, "tag").filter(|t| !t.is_empty())
}

/// Splits a comma-separated header list (Via, Route, Record-Route, Contact) at top-level commas,
/// leaving commas inside quotes and `<>` alone (RFC 3261 §7.3.1).
pub(super) fn split_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            current.push(c);
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                let item = current.trim();
                if !item.is_empty() {
                    items.push(item.to_owned());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    let item = current.trim();
    if !item.is_empty() {
        items.push(item.to_owned());
    }
    items
}

// ---------------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------------

/// A SIP method (RFC 3261 §7.1; names are case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE (§13).
    Invite,
    /// ACK (§13.2.2.4, §17.1.1.3).
    Ack,
    /// BYE (§15).
    Bye,
    /// CANCEL (§9).
    Cancel,
    /// OPTIONS (§11).
    Options,
    /// REGISTER (§10).
    Register,
    /// INFO (RFC 6086).
    Info,
    /// UPDATE (RFC 3311).
    Update,
    /// PRACK (RFC 3262).
    Prack,
    /// REFER (RFC 3515).
    Refer,
    /// NOTIFY (RFC 6665).
    Notify,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// MESSAGE (RFC 3428).
    Message,
    /// PUBLISH (RFC 3903).
    Publish,
    /// Any other token.
    Other(String),
}

impl Method {
    /// The method for a token; `None` when `token` is not an RFC 3261 §25.1 token.
    pub fn parse(token: &str) -> Option<Method> {
        if token.is_empty() || !token.bytes().all(is_token_byte) {
            return None;
        }
        Some(match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        })
    }

    /// The method name as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

// ---------------------------------------------------------------------------------------------
// Call parameters and dialog state
// ---------------------------------------------------------------------------------------------

/// The trunk and how we present ourselves on it; the same for every call (built from config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `DIDWW_SIP_HOST`: host of the Request-URI, To and P-Asserted-Identity, and (with its port
    /// or 5060) where out-of-dialog requests go.
    pub trunk: HostPort,
    /// `PUBLIC_IP`: written in Via, From, Contact (and the SDP), never the bound address.
    pub public_ip: IpAddr,
    /// `SIP_PORT`: the local UDP port, advertised with `public_ip` in Via and Contact.
    pub sip_port: u16,
    /// `User-Agent` / `Server` value, normally [`USER_AGENT`].
    pub user_agent: String,
}

impl Endpoint {
    /// An endpoint with the default [`USER_AGENT`].
    pub fn new(trunk: HostPort, public_ip: IpAddr, sip_port: u16) -> Self {
        Self {
            trunk,
            public_ip,
            sip_port,
            user_agent: USER_AGENT.to_owned(),
        }
    }

    /// Our Via value for `branch`: UDP, `PUBLIC_IP:SIP_PORT`, and `rport` so responses find their
    /// way back through NAT (RFC 3581 §3).
    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/UDP {}:{};branch={branch};rport",
            ip_for_uri(self.public_ip),
            self.sip_port
        )
    }

    /// `<sip:user@public_ip:port>` for Contact.
    fn contact(&self, user: &str) -> String {
        format!(
            "<sip:{user}@{}:{}>",
            ip_for_uri(self.public_ip),
            self.sip_port
        )
    }

    /// Where out-of-dialog requests go: the trunk host and port (5060 when not given).
    pub fn trunk_destination(&self) -> HostPort {
        HostPort {
            host: self.trunk.host.clone(),
            port: Some(self.trunk.port.unwrap_or(5060)),
        }
    }
}

/// Everything fixed for one outgoing call (one INVITE chain and its dialog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallParams {
    /// Trunk and local addressing.
    pub endpoint: Endpoint,
    /// Destination, E.164 digits without `+`: user of the Request-URI and To.
    pub destination: String,
    /// Caller ID, E.164 digits without `+`: user of From, Contact and P-Asserted-Identity.
    pub caller_id: String,
    /// Call-ID of the call (RFC 3261 §8.1.1.4).
    pub call_id: String,
    /// Our From tag, also the local tag of the dialog.
    pub from_tag: String,
    /// A pre-loaded route set (RFC 3261 §8.1.2), normally empty; entries are name-addrs such as
    /// `<sip:proxy.example;lr>`. Never the Record-Route of a 401: only a 2xx creates the dialog's
    /// route set.
    pub outbound_route: Vec<String>,
}

impl CallParams {
    /// A call to `destination` from `caller_id` (both normalised with [`e164_digits`]) with a
    /// fresh Call-ID and From tag.
    pub fn new(endpoint: Endpoint, destination: &str, caller_id: &str) -> Result<Self, Error> {
        Ok(Self {
            endpoint,
            destination: e164_digits(destination)?,
            caller_id: e164_digits(caller_id)?,
            call_id: new_call_id(),
            from_tag: new_tag(),
            outbound_route: Vec::new(),
        })
    }

    /// The INVITE's Request-URI: `sip:<destination>@DIDWW_SIP_HOST` (with its port if given).
    /// Also the `uri` of the digest answer (RFC 3261 §22.4).
    pub fn request_uri(&self) -> String {
        format!("sip:{}@{}", self.destination, self.endpoint.trunk)
    }

    /// The From value: `<sip:<caller>@PUBLIC_IP>;tag=…`.
    fn local_party(&self) -> String {
        format!(
            "<sip:{}@{}>;tag={}",
            self.caller_id,
            ip_for_uri(self.endpoint.public_ip),
            self.from_tag
        )
    }

    /// The To value of out-of-dialog requests: `<sip:<destination>@<trunk host>>`.
    fn remote_party(&self) -> String {
        format!(
            "<sip:{}@{}>",
            self.destination,
            self.endpoint.trunk.host_for_uri()
        )
    }

    /// The P-Asserted-Identity value: `<sip:<caller>@<trunk host>>` (RFC 3325 §9.1).
    fn asserted_identity(&self) -> String {
        format!(
            "<sip:{}@{}>",
            self.caller_id,
            self.endpoint.trunk.host_for_uri()
        )
    }

    /// The headers shared by the INVITE, its CANCEL and the ACK of a non-2xx: Via, Max-Forwards,
    /// Route, From and (for INVITE/CANCEL) To, then Call-ID and CSeq.
    fn invite_chain_request(
        &self,
        method: &str,
        cseq: u32,
        branch: &str,
        to: &str,
    ) -> MessageWriter {
        let mut w = MessageWriter::request(method, &self.request_uri());
        w.header("Via", &self.endpoint.via(branch));
        w.header("Max-Forwards", &MAX_FORWARDS.to_string());
        for route in &self.outbound_route {
            w.header("Route", route);
        }
        w.header("From", &self.local_party());
        w.header("To", to);
        w.header("Call-ID", &self.call_id);
        w.header("CSeq", &format!("{cseq} {method}"));
        w
    }
}

/// The dialog a 2xx to our INVITE created (RFC 3261 §12.1.2, UAC side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (the From tag).
    pub local_tag: String,
    /// The remote tag (To tag of the 2xx); `None` only for a non-compliant peer.
    pub remote_tag: Option<String>,
    /// The To value of the 2xx, echoed in in-dialog requests (remote URI plus remote tag).
    pub remote_to: String,
    /// The remote target: the 2xx's Contact URI, Request-URI of in-dialog requests.
    pub remote_target: String,
    /// The route set: the 2xx's Record-Route entries in reverse order.
    pub route_set: Vec<String>,
    /// CSeq number of the INVITE that created the dialog (used by its ACK).
    pub invite_cseq: u32,
    /// The last CSeq number we used in this dialog.
    pub local_cseq: u32,
}

impl Dialog {
    /// The dialog from a 2xx to the INVITE sent with `invite_cseq` (RFC 3261 §12.1.2): route
    /// set = Record-Route reversed, remote target = Contact, remote tag = To tag.
    pub fn from_2xx(
        params: &CallParams,
        invite_cseq: u32,
        response: &Response,
    ) -> Result<Self, Error> {
        let remote_target = response
            .contact
            .clone()
            .ok_or(Error::MissingHeader("Contact"))?;
        uri_host_port(&remote_target)?;
        Ok(Dialog {
            call_id: params.call_id.clone(),
            local_tag: params.from_tag.clone(),
            remote_tag: response.to_tag.clone(),
            remote_to: response.to.clone(),
            remote_target,
            route_set: response.record_route.iter().rev().cloned().collect(),
            invite_cseq,
            local_cseq: invite_cseq,
        })
    }

    /// The CSeq number for the next in-dialog request (one more than the last, RFC 3261
    /// §12.2.1.1).
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq = self.local_cseq.saturating_add(1).min(MAX_CSEQ);
        self.local_cseq
    }

    /// Request-URI and Route entries of an in-dialog request (RFC 3261 §12.2.1.1): with an empty
    /// route set or a loose first route, the remote target and the route set as is; with a strict
    /// first route, that route's URI and the rest plus the remote target.
    pub fn request_target(&self) -> (String, Vec<String>) {
        match self.route_set.first() {
            Some(first) if !is_loose_route(first) => {
                let uri = angle_uri(first).to_owned();
                let mut routes: Vec<String> = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (uri, routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        }
    }

    /// Where in-dialog requests go: the first route if any, else the remote target (RFC 3261
    /// §8.1.2, §12.2.1.1). The port is 5060 when the URI has none.
    pub fn next_hop(&self) -> Result<HostPort, Error> {
        let uri = match self.route_set.first() {
            Some(first) => first.as_str(),
            None => self.remote_target.as_str(),
        };
        let mut hop = uri_host_port(uri)?;
        hop.port.get_or_insert(5060);
        Ok(hop)
    }

    /// Whether an incoming request belongs to this dialog (RFC 3261 §12.2.2: Call-ID, our tag in
    /// To, their tag in From).
    pub fn matches(&self, request: &Request) -> bool {
        request.call_id == self.call_id
            && request.to_tag.as_deref() == Some(self.local_tag.as_str())
            && request.from_tag == self.remote_tag
    }

    /// An in-dialog request up to CSeq: Request-URI, Via, Max-Forwards, Route, From, To, Call-ID.
    fn request(&self, params: &CallParams, method: &str, cseq: u32, branch: &str) -> MessageWriter {
        let (uri, routes) = self.request_target();
        let mut w = MessageWriter::request(method, &uri);
        w.header("Via", &params.endpoint.via(branch));
        w.header("Max-Forwards", &MAX_FORWARDS.to_string());
        for route in &routes {
            w.header("Route", route);
        }
        w.header("From", &params.local_party());
        w.header("To", &self.remote_to);
        w.header("Call-ID", &self.call_id);
        w.header("CSeq", &format!("{cseq} {method}"));
        w
    }
}

// ---------------------------------------------------------------------------------------------
// Request builders
// ---------------------------------------------------------------------------------------------

/// Serialises a message: start line, headers, Content-Length, blank line, body; CRLF throughout.
struct MessageWriter {
    text: String,
}

impl MessageWriter {
    fn request(method: &str, uri: &str) -> Self {
        Self {
            text: format!("{method} {uri} SIP/2.0\r\n"),
        }
    }

    fn response(status: u16, reason: &str) -> Self {
        Self {
            text: format!("SIP/2.0 {status} {}\r\n", one_line(reason)),
        }
    }

    /// Appends `name: value`; CR/LF in the value become spaces, so nothing can inject a header.
    fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.text.push_str(name);
        self.text.push_str(": ");
        self.text.push_str(&one_line(value));
        self.text.push_str("\r\n");
        self
    }

    fn auth(&mut self, headers: &[AuthorizationHeader]) -> &mut Self {
        for h in headers {
            self.header(h.name, &h.value);
        }
        self
    }

    /// Adds Content-Type (when there is a body) and Content-Length, then the body.
    fn finish(mut self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        if let (Some(ct), false) = (content_type, body.is_empty()) {
            self.header("Content-Type", ct);
        }
        self.header("Content-Length", &body.len().to_string());
        self.text.push_str("\r\n");
        let mut bytes = self.text.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

fn one_line(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

/// The INVITE (RFC 3261 §8.1.1, §13.2.1; DIDWW reference §4.10) with our SDP `sdp`, CSeq
/// `cseq`, Via branch `branch`, and the credentials of a previous challenge if any.
pub fn invite(
    params: &CallParams,
    cseq: u32,
    branch: &str,
    sdp: &str,
    auth: &[AuthorizationHeader],
) -> Vec<u8> {
    let mut w = params.invite_chain_request("INVITE", cseq, branch, &params.remote_party());
    w.header("Contact", &params.endpoint.contact(&params.caller_id));
    w.header("P-Asserted-Identity", &params.asserted_identity());
    w.auth(auth);
    w.header("User-Agent", &params.endpoint.user_agent);
    w.header("Allow", ALLOW);
    w.finish(Some("application/sdp"), sdp.as_bytes())
}

/// The ACK of a non-2xx final response to the INVITE sent with `cseq`/`branch` (RFC 3261
/// §17.1.1.3): same Request-URI, Via branch, From, Call-ID, Route and CSeq number; To copied
/// from the response (with its tag). It belongs to the INVITE transaction: send it to the same
/// destination as the INVITE.
pub fn ack_non_2xx(params: &CallParams, cseq: u32, branch: &str, response: &Response) -> Vec<u8> {
    let mut w = params.invite_chain_request("ACK", cseq, branch, &response.to);
    w.header("User-Agent", &params.endpoint.user_agent);
    w.finish(None, &[])
}

/// The CANCEL of the INVITE sent with `cseq`/`branch` (RFC 3261 §9.1): same Request-URI, Call-ID,
/// From, To (no tag), Route, Via branch and CSeq number, method CANCEL. Never carries credentials
/// (CANCEL cannot be challenged, §22.1). Send it to the INVITE's destination, only after a
/// provisional response arrived.
pub fn cancel(params: &CallParams, cseq: u32, branch: &str) -> Vec<u8> {
    let mut w = params.invite_chain_request("CANCEL", cseq, branch, &params.remote_party());
    w.header("User-Agent", &params.endpoint.user_agent);
    w.finish(None, &[])
}

/// The ACK of a 2xx (RFC 3261 §13.2.2.4): a new transaction with a fresh `branch`, sent to
/// [`Dialog::next_hop`], Request-URI the remote target, Route from the route set, CSeq number of
/// the INVITE, and the same credentials the INVITE carried (§22.1). Sent once per 2xx received,
/// including retransmissions of the 2xx.
pub fn ack_2xx(
    params: &CallParams,
    dialog: &Dialog,
    branch: &str,
    auth: &[AuthorizationHeader],
) -> Vec<u8> {
    let mut w = dialog.request(params, "ACK", dialog.invite_cseq, branch);
    w.auth(auth);
    w.header("User-Agent", &params.endpoint.user_agent);
    w.finish(None, &[])
}

/// A BYE in the dialog (RFC 3261 §15.1.1) with CSeq `cseq` (take it from
/// [`Dialog::next_cseq`]); send it to [`Dialog::next_hop`].
pub fn bye(
    params: &CallParams,
    dialog: &Dialog,
    cseq: u32,
    branch: &str,
    auth: &[AuthorizationHeader],
) -> Vec<u8> {
    let mut w = dialog.request(params, "BYE", cseq, branch);
    w.auth(auth);
    w.header("User-Agent", &params.endpoint.user_agent);
    w.finish(None, &[])
}

/// An out-of-dialog OPTIONS to the trunk (RFC 3261 §11.1), the keepalive of reference §4.9:
/// `OPTIONS sip:DIDWW_SIP_HOST`, From `<sip:<user>@PUBLIC_IP>;tag=<from_tag>`, its own Call-ID.
/// Send it to [`Endpoint::trunk_destination`].
pub fn options(
    endpoint: &Endpoint,
    user: &str,
    call_id: &str,
    from_tag: &str,
    cseq: u32,
    branch: &str,
) -> Vec<u8> {
    let mut w = MessageWriter::request("OPTIONS", &format!("sip:{}", endpoint.trunk));
    w.header("Via", &endpoint.via(branch));
    w.header("Max-Forwards", &MAX_FORWARDS.to_string());
    w.header(
        "From",
        &format!(
            "<sip:{user}@{}>;tag={from_tag}",
            ip_for_uri(endpoint.public_ip)
        ),
    );
    w.header("To", &format!("<sip:{}>", endpoint.trunk.host_for_uri()));
    w.header("Call-ID", call_id);
    w.header("CSeq", &format!("{cseq} OPTIONS"));
    w.header("Contact", &endpoint.contact(user));
    w.header("Accept", "application/sdp");
    w.header("User-Agent", &endpoint.user_agent);
    w.header("Allow", ALLOW);
    w.finish(None, &[])
}

// ---------------------------------------------------------------------------------------------
// Responses to incoming requests
// ---------------------------------------------------------------------------------------------

/// The common part of a response (RFC 3261 §8.2.6.2): Via (all, in order), From, To (with a new
/// tag if the request's had none), Call-ID and CSeq copied from the request. `None` for ACK, which
/// never gets a response (RFC 3261 §17: the ACK of a non-2xx ends the INVITE transaction, the ACK
/// of a 2xx is a transaction of its own that nobody answers).
fn response_writer(
    request: &Request,
    status: u16,
    reason: &str,
    server: &str,
) -> Option<MessageWriter> {
    if request.method == Method::Ack {
        return None;
    }
    let mut w = MessageWriter::response(status, reason);
    for via in &request.vias {
        w.header("Via", via);
    }
    w.header("From", &request.from);
    if request.to_tag.is_none() && status > 100 {
        w.header("To", &format!("{};tag={}", request.to, new_tag()));
    } else {
        w.header("To", &request.to);
    }
    w.header("Call-ID", &request.call_id);
    w.header("CSeq", &format!("{} {}", request.cseq, request.cseq_method));
    w.header("Server", server);
    Some(w)
}

/// A bodiless response to `request` with any status, e.g. 405 or 488. `None` for ACK.
pub fn response(request: &Request, status: u16, reason: &str, server: &str) -> Option<Vec<u8>> {
    response_writer(request, status, reason, server).map(|w| w.finish(None, &[]))
}

/// 200 OK to a BYE (RFC 3261 §15.1.2) or an OPTIONS (§11.2, with Allow and Accept). `None` for
/// ACK.
pub fn ok(request: &Request, server: &str) -> Option<Vec<u8>> {
    let mut w = response_writer(request, 200, "OK", server)?;
    if request.method == Method::Options {
        w.header("Allow", ALLOW);
        w.header("Accept", "application/sdp");
    }
    Some(w.finish(None, &[]))
}

/// 200 OK to a re-INVITE (RFC 3261 §14.2) carrying our SDP `sdp` (from
/// `SdpSession::answer_reoffer` / `current`) and our Contact. `None` for ACK.
pub fn ok_to_reinvite(request: &Request, params: &CallParams, sdp: &str) -> Option<Vec<u8>> {
    let mut w = response_writer(request, 200, "OK", &params.endpoint.user_agent)?;
    w.header("Contact", &params.endpoint.contact(&params.caller_id));
    w.header("Allow", ALLOW);
    Some(w.finish(Some("application/sdp"), sdp.as_bytes()))
}

/// 481 Call/Transaction Does Not Exist (RFC 3261 §12.2.2) for a request matching no dialog or
/// transaction. `None` for ACK.
pub fn call_does_not_exist(request: &Request, server: &str) -> Option<Vec<u8>> {
    response(request, 481, "Call/Transaction Does Not Exist", server)
}

/// What a UAS adds to a response built by [`response_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseExtras<'a> {
    /// The To tag to add when the request's To has none (RFC 3261 §8.2.6.2): the dialog's local
    /// tag, so that provisional, final and retransmitted responses agree. `None` keeps
    /// [`response`]'s rule: a fresh tag above 100, none on 100 Trying.
    pub to_tag: Option<&'a str>,
    /// Further headers, in order, after Server (Contact, Record-Route, WWW-Authenticate, …).
    pub headers: &'a [(&'a str, &'a str)],
    /// Content-Type and body, e.g. `("application/sdp", answer)`.
    pub body: Option<(&'a str, &'a [u8])>,
}

/// A response to `request` with the UAS parts of `extras` (a chosen To tag, extra headers, a
/// body): what a callee sends, e.g. a 401 with `WWW-Authenticate` or a 200 with Contact,
/// Record-Route and an SDP answer. `None` for ACK.
pub fn response_with(
    request: &Request,
    status: u16,
    reason: &str,
    server: &str,
    extras: ResponseExtras<'_>,
) -> Option<Vec<u8>> {
    if request.method == Method::Ack {
        return None;
    }
    let mut w = MessageWriter::response(status, reason);
    for via in &request.vias {
        w.header("Via", via);
    }
    w.header("From", &request.from);
    match (&request.to_tag, extras.to_tag) {
        (None, Some(tag)) => w.header("To", &format!("{};tag={tag}", request.to)),
        (None, None) if status > 100 => {
            w.header("To", &format!("{};tag={}", request.to, new_tag()))
        }
        _ => w.header("To", &request.to),
    };
    w.header("Call-ID", &request.call_id);
    w.header("CSeq", &format!("{} {}", request.cseq, request.cseq_method));
    w.header("Server", server);
    for (name, value) in extras.headers {
        w.header(name, value);
    }
    Some(match extras.body {
        Some((content_type, body)) => w.finish(Some(content_type), body),
        None => w.finish(None, &[]),
    })
}

/// The dialog a UAS creates by answering `invite` with To tag `local_tag` (RFC 3261 §12.1.1):
/// route set = the INVITE's Record-Route in order, remote target = its Contact, remote tag = its
/// From tag, `remote_to` = its From (the To of requests the callee sends). The callee's local CSeq
/// starts empty, so the first [`Dialog::next_cseq`] is 1. `local_tag` is our tag; requests built
/// from this dialog go through [`uas_request`], not the UAC builders.
pub fn uas_dialog(invite: &Request, local_tag: &str) -> Result<Dialog, Error> {
    let remote_target = invite
        .contact
        .clone()
        .ok_or(Error::MissingHeader("Contact"))?;
    uri_host_port(&remote_target)?;
    Ok(Dialog {
        call_id: invite.call_id.clone(),
        local_tag: local_tag.to_owned(),
        remote_tag: invite.from_tag.clone(),
        remote_to: invite.from.clone(),
        remote_target,
        route_set: invite.record_route.clone(),
        invite_cseq: invite.cseq,
        local_cseq: 0,
    })
}

/// A request the callee sends in a [`uas_dialog`] (RFC 3261 §12.2.1.1), e.g. its BYE: Request-URI
/// and Route from [`Dialog::request_target`], Via `SIP/2.0/UDP <via_sent_by>;branch=…;rport`, From
/// `local_party` (the INVITE's To value with our tag), To the caller (`dialog.remote_to`), CSeq
/// `cseq`. Send it to [`Dialog::next_hop`].
pub fn uas_request(
    dialog: &Dialog,
    method: &str,
    local_party: &str,
    via_sent_by: &str,
    branch: &str,
    cseq: u32,
    user_agent: &str,
) -> Vec<u8> {
    let (uri, routes) = dialog.request_target();
    let mut w = MessageWriter::request(method, &uri);
    w.header(
        "Via",
        &format!("SIP/2.0/UDP {via_sent_by};branch={branch};rport"),
    );
    w.header("Max-Forwards", &MAX_FORWARDS.to_string());
    for route in &routes {
        w.header("Route", route);
    }
    w.header("From", local_party);
    w.header("To", &dialog.remote_to);
    w.header("Call-ID", &dialog.call_id);
    w.header("CSeq", &format!("{cseq} {method}"));
    w.header("User-Agent", user_agent);
    w.finish(None, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::{ChallengeKind, ChallengeVerdict, Credentials, DigestSession};

    fn endpoint() -> Endpoint {
        Endpoint::new(
            HostPort::parse("out.didww.com").unwrap(),
            "203.0.113.25".parse().unwrap(),
            5060,
        )
    }

    fn params() -> CallParams {
        CallParams {
            endpoint: endpoint(),
            destination: "15555550123".into(),
            caller_id: "15555550100".into(),
            call_id: "5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f".into(),
            from_tag: "a1b2c3".into(),
            outbound_route: Vec::new(),
        }
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    fn request(bytes: &[u8]) -> Request {
        match parse_datagram(bytes).unwrap() {
            Incoming::Request(r) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn response_of(bytes: &[u8]) -> Response {
        match parse_datagram(bytes).unwrap() {
            Incoming::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// The DIDWW 401 of reference §4.4: Record-Route from an internal node and the LB, To tag.
    const DIDWW_401: &str = include_str!("samples/didww_401.sip");

    /// An Asterisk-style 200 OK with two Record-Routes on one line and SDP.
    const ASTERISK_200: &str = include_str!("samples/asterisk_200.sip");

    #[test]
    fn invite_has_every_header_the_trunk_needs() {
        let p = params();
        let bytes = invite(&p, 1, "z9hG4bK-8d1f2a", "v=0\r\n", &[]);
        assert_eq!(
            text(&bytes),
            "INVITE sip:15555550123@out.didww.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 203.0.113.25:5060;branch=z9hG4bK-8d1f2a;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n\
             To: <sip:15555550123@out.didww.com>\r\n\
             Call-ID: 5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:15555550100@203.0.113.25:5060>\r\n\
             P-Asserted-Identity: <sip:15555550100@out.didww.com>\r\n\
             User-Agent: otp-gateway/0.1.0\r\n\
             Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: 5\r\n\
             \r\n\
             v=0\r\n"
        );
        // Our own output parses back.
        let r = request(&bytes);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.via_branch.as_deref(), Some("z9hG4bK-8d1f2a"));
        assert_eq!(r.body, b"v=0\r\n");
    }

    #[test]
    fn invite_after_didww_401_carries_authorization_and_ack_copies_to() {
        let p = params();
        let r401 = response_of(DIDWW_401.as_bytes());
        assert_eq!(r401.status, 401);
        assert_eq!(r401.reason, "Unauthorized");
        assert_eq!(r401.via_branch.as_deref(), Some("z9hG4bK-8d1f2a"));
        assert_eq!(
            r401.to_tag.as_deref(),
            Some("10-67E5E9A8-000D9E7B-8C3B2700")
        );
        assert_eq!(r401.record_route.len(), 2);
        assert_eq!(
            r401.record_route[0],
            "<sip:46.19.209.8;r2=on;lr;ftag=a1b2c3;did=4e1.3a2>"
        );

        // ACK of the 401: same branch and CSeq number, To with DIDWW's tag, no Record-Route use.
        let ack = ack_non_2xx(&p, 1, "z9hG4bK-8d1f2a", &r401);
        let ack_text = text(&ack);
        assert!(ack_text.starts_with("ACK sip:15555550123@out.didww.com SIP/2.0\r\n"));
        assert!(
            ack_text.contains("Via: SIP/2.0/UDP 203.0.113.25:5060;branch=z9hG4bK-8d1f2a;rport\r\n")
        );
        assert!(ack_text.contains("CSeq: 1 ACK\r\n"));
        assert!(ack_text
            .contains("To: <sip:15555550123@out.didww.com>;tag=10-67E5E9A8-000D9E7B-8C3B2700\r\n"));
        assert!(!ack_text.contains("Route:"));
        assert!(ack_text.ends_with("Content-Length: 0\r\n\r\n"));

        // Resend with credentials, CSeq 2, new branch.
        let mut session = DigestSession::new(Credentials {
            username: "k3x9q2m7zp".into(),
            password: "secret".into(),
        });
        let (kind, values) = r401.challenges().unwrap();
        assert_eq!(
            session.on_challenge(kind, values, 0).unwrap(),
            ChallengeVerdict::Retry
        );
        let auth = session.authorize("INVITE", &p.request_uri());
        let bytes = invite(&p, 2, "z9hG4bKsecond", "v=0\r\n", &auth);
        let t = text(&bytes);
        assert!(t.contains("CSeq: 2 INVITE\r\n"));
        assert!(t.contains(
            "\r\nAuthorization: Digest username=\"k3x9q2m7zp\", realm=\"out.didww.com\""
        ));
        assert!(t.contains("uri=\"sip:15555550123@out.didww.com\""));
        assert!(!t.contains("Route:"));
    }

    #[test]
    fn dialog_from_2xx_routes_ack_and_bye_through_reversed_record_route() {
        let p = params();
        let ok = response_of(ASTERISK_200.as_bytes());
        assert!(ok.is_success());
        assert_eq!(ok.reason, "OK");
        assert_eq!(ok.cseq, 2);
        assert_eq!(ok.cseq_method, Method::Invite);
        assert_eq!(ok.body.len(), 224);
        assert!(ok.body_text().unwrap().ends_with("a=sendrecv\r\n"));
        assert_eq!(
            ok.contact.as_deref(),
            Some("sip:15555550123@46.19.209.44:5060;transport=udp")
        );

        let mut dialog = Dialog::from_2xx(&p, 2, &ok).unwrap();
        assert_eq!(dialog.remote_tag.as_deref(), Some("as5f1b2c7e"));
        assert_eq!(
            dialog.route_set,
            vec![
                "<sip:46.19.209.44;r2=on;lr;ftag=a1b2c3>".to_owned(),
                "<sip:46.19.209.8;r2=on;lr;ftag=a1b2c3>".to_owned(),
            ]
        );
        assert_eq!(
            dialog.next_hop().unwrap(),
            HostPort {
                host: "46.19.209.44".into(),
                port: Some(5060)
            }
        );

        let ack = ack_2xx(&p, &dialog, "z9hG4bKack", &[]);
        assert_eq!(
            text(&ack),
            "ACK sip:15555550123@46.19.209.44:5060;transport=udp SIP/2.0\r\n\
             Via: SIP/2.0/UDP 203.0.113.25:5060;branch=z9hG4bKack;rport\r\n\
             Max-Forwards: 70\r\n\
             Route: <sip:46.19.209.44;r2=on;lr;ftag=a1b2c3>\r\n\
             Route: <sip:46.19.209.8;r2=on;lr;ftag=a1b2c3>\r\n\
             From: <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n\
             To: <sip:15555550123@out.didww.com>;tag=as5f1b2c7e\r\n\
             Call-ID: 5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f\r\n\
             CSeq: 2 ACK\r\n\
             User-Agent: otp-gateway/0.1.0\r\n\
             Content-Length: 0\r\n\
             \r\n"
        );

        let cseq = dialog.next_cseq();
        assert_eq!(cseq, 3);
        let bye_bytes = bye(&p, &dialog, cseq, "z9hG4bKbye", &[]);
        let b = request(&bye_bytes);
        assert_eq!(b.method, Method::Bye);
        assert_eq!(b.cseq, 3);
        assert_eq!(b.uri, "sip:15555550123@46.19.209.44:5060;transport=udp");
        assert_eq!(b.to_tag.as_deref(), Some("as5f1b2c7e"));
        assert_eq!(b.from_tag.as_deref(), Some("a1b2c3"));
        assert!(text(&bye_bytes).contains("Route: <sip:46.19.209.44;r2=on;lr;ftag=a1b2c3>\r\n"));
    }

    #[test]
    fn strict_route_and_no_route_targets() {
        let p = params();
        let mut ok = response_of(ASTERISK_200.as_bytes());
        // Record-Route in message order: the strict 10.0.0.1 is nearest to us after reversal.
        ok.record_route = vec!["<sip:10.0.0.2;lr>".into(), "<sip:10.0.0.1:5070>".into()];
        let dialog = Dialog::from_2xx(&p, 1, &ok).unwrap();
        let (uri, routes) = dialog.request_target();
        assert_eq!(uri, "sip:10.0.0.1:5070");
        assert_eq!(
            routes,
            vec![
                "<sip:10.0.0.2;lr>".to_owned(),
                "<sip:15555550123@46.19.209.44:5060;transport=udp>".to_owned()
            ]
        );
        assert_eq!(
            dialog.next_hop().unwrap(),
            HostPort {
                host: "10.0.0.1".into(),
                port: Some(5070)
            }
        );

        ok.record_route.clear();
        let dialog = Dialog::from_2xx(&p, 1, &ok).unwrap();
        assert!(dialog.route_set.is_empty());
        assert_eq!(dialog.next_hop().unwrap().host, "46.19.209.44");

        ok.contact = None;
        assert_eq!(
            Dialog::from_2xx(&p, 1, &ok),
            Err(Error::MissingHeader("Contact"))
        );
    }

    #[test]
    fn cancel_matches_the_invite() {
        let p = params();
        let bytes = cancel(&p, 2, "z9hG4bKinv2");
        let c = request(&bytes);
        assert_eq!(c.method, Method::Cancel);
        assert_eq!(c.uri, p.request_uri());
        assert_eq!(c.cseq, 2);
        assert_eq!(c.cseq_method, Method::Cancel);
        assert_eq!(c.via_branch.as_deref(), Some("z9hG4bKinv2"));
        assert_eq!(c.vias.len(), 1);
        assert!(c.to_tag.is_none());
        assert!(!text(&bytes).contains("Authorization"));
    }

    #[test]
    fn options_keepalive() {
        let e = Endpoint::new(
            HostPort::parse("[2a01:ad00:1:1::44]:5060").unwrap(),
            "2001:db8::25".parse().unwrap(),
            5062,
        );
        let bytes = options(&e, "15555550100", "cid-1", "t1", 7, "z9hG4bKo");
        let t = text(&bytes);
        assert!(t.starts_with("OPTIONS sip:[2a01:ad00:1:1::44]:5060 SIP/2.0\r\n"));
        assert!(t.contains("Via: SIP/2.0/UDP [2001:db8::25]:5062;branch=z9hG4bKo;rport\r\n"));
        assert!(t.contains("To: <sip:[2a01:ad00:1:1::44]>\r\n"));
        assert!(t.contains("Contact: <sip:15555550100@[2001:db8::25]:5062>\r\n"));
        let r = request(&bytes);
        assert_eq!(r.cseq, 7);
        assert_eq!(r.cseq_method, Method::Options);
        assert_eq!(r.via_branch.as_deref(), Some("z9hG4bKo"));
        assert_eq!(e.trunk_destination().port, Some(5060));
    }

    /// A BYE from DIDWW's side, folded header and compact forms included.
    const REMOTE_BYE: &str = include_str!("samples/remote_bye.sip");

    #[test]
    fn remote_bye_is_matched_and_answered_200() {
        let p = params();
        let ok200 = response_of(ASTERISK_200.as_bytes());
        let dialog = Dialog::from_2xx(&p, 2, &ok200).unwrap();
        let bye_req = request(REMOTE_BYE.as_bytes());
        assert_eq!(bye_req.method, Method::Bye);
        assert_eq!(bye_req.cseq, 102);
        assert_eq!(bye_req.vias.len(), 2);
        assert_eq!(bye_req.via_branch.as_deref(), Some("z9hG4bK3a1f.9e2b"));
        assert!(dialog.matches(&bye_req));

        let resp = ok(&bye_req, USER_AGENT).unwrap();
        assert_eq!(
            text(&resp),
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP 46.19.209.44;branch=z9hG4bK3a1f.9e2b;rport\r\n\
             Via: SIP/2.0/UDP 46.19.209.8:5060;branch=z9hG4bKx2\r\n\
             From: <sip:15555550123@out.didww.com>;tag=as5f1b2c7e\r\n\
             To: <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n\
             Call-ID: 5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f\r\n\
             CSeq: 102 BYE\r\n\
             Server: otp-gateway/0.1.0\r\n\
             Content-Length: 0\r\n\
             \r\n"
        );
        let parsed = response_of(&resp);
        assert_eq!(parsed.status, 200);
        assert_eq!(parsed.cseq_method, Method::Bye);
    }

    #[test]
    fn unknown_dialog_gets_481_with_a_to_tag_and_ack_gets_nothing() {
        let p = params();
        let ok200 = response_of(ASTERISK_200.as_bytes());
        let dialog = Dialog::from_2xx(&p, 2, &ok200).unwrap();
        let stray = "OPTIONS sip:15555550100@203.0.113.25 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKscan\r\n\
            From: \"friendly-scanner\" <sip:100@198.51.100.7>;tag=3a\r\n\
            To: <sip:100@203.0.113.25>\r\n\
            Call-ID: 1234\r\n\
            CSeq: 1 OPTIONS\r\n\
            Content-Length: 0\r\n\r\n";
        let r = request(stray.as_bytes());
        assert!(!dialog.matches(&r));
        let resp = response_of(&call_does_not_exist(&r, USER_AGENT).unwrap());
        assert_eq!(resp.status, 481);
        assert_eq!(resp.reason, "Call/Transaction Does Not Exist");
        assert!(resp.to_tag.is_some());
        assert_eq!(resp.via_branch.as_deref(), Some("z9hG4bKscan"));

        // 200 to an OPTIONS advertises Allow and Accept.
        let t = ok(&r, USER_AGENT).unwrap();
        assert!(text(&t).contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"));
        assert!(text(&t).contains("Accept: application/sdp\r\n"));

        let ack = stray
            .replace("OPTIONS sip", "ACK sip")
            .replace("1 OPTIONS", "1 ACK");
        let ack = request(ack.as_bytes());
        assert_eq!(ack.method, Method::Ack);
        assert!(call_does_not_exist(&ack, USER_AGENT).is_none());
        assert!(ok(&ack, USER_AGENT).is_none());
    }

    #[test]
    fn reinvite_is_answered_with_our_sdp() {
        let p = params();
        let reinvite = "INVITE sip:15555550100@203.0.113.25:5060 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 46.19.209.44:5060;branch=z9hG4bKre1\r\n\
            From: <sip:15555550123@out.didww.com>;tag=as5f1b2c7e\r\n\
            To: <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n\
            Call-ID: 5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f\r\n\
            CSeq: 103 INVITE\r\n\
            Contact: <sip:15555550123@46.19.209.44:5060>\r\n\
            Content-Type: application/sdp\r\n\
            Content-Length: 4\r\n\r\nv=0\n";
        let r = request(reinvite.as_bytes());
        assert_eq!(r.body_text(), Some("v=0\n"));
        let bytes = ok_to_reinvite(&r, &p, "v=0\r\n").unwrap();
        let t = text(&bytes);
        assert!(t.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(t.contains("CSeq: 103 INVITE\r\n"));
        assert!(t.contains("To: <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n"));
        assert!(t.contains("Contact: <sip:15555550100@203.0.113.25:5060>\r\n"));
        assert!(t.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
    }

    #[test]
    fn real_world_samples_parse() {
        // FreeSWITCH 183 with early media SDP, display names, a quoted comma and IPv6 Via.
        let fs183 = "SIP/2.0 183 Session Progress\r\n\
            Via: SIP/2.0/UDP [2001:db8::25]:5060;branch=z9hG4bKv6;rport=5060\r\n\
            From: \"OTP, Gateway\" <sip:15555550100@[2001:db8::25]>;tag=a1b2c3\r\n\
            To: \"Dest\" <sip:15555550123@out.didww.com>;tag=Nj5Q3y8KcH2rF\r\n\
            Call-ID: abc@host\r\n\
            CSeq: 1 INVITE\r\n\
            Contact: \"Dest\" <sip:mod_sofia@[2a01:ad00:4:2::54]:5080>;expires=60\r\n\
            User-Agent: FreeSWITCH-mod_sofia/1.10.11\r\n\
            Content-Type: application/sdp\r\n\
            Content-Length: 3\r\n\r\nabcTRAILING";
        let r = response_of(fs183.as_bytes());
        assert_eq!(r.status, 183);
        assert_eq!(r.reason, "Session Progress");
        assert!(r.is_provisional());
        assert_eq!(r.via_branch.as_deref(), Some("z9hG4bKv6"));
        assert_eq!(r.from_tag.as_deref(), Some("a1b2c3"));
        assert_eq!(r.to_tag.as_deref(), Some("Nj5Q3y8KcH2rF"));
        assert_eq!(
            r.contact.as_deref(),
            Some("sip:mod_sofia@[2a01:ad00:4:2::54]:5080")
        );
        assert_eq!(
            uri_host_port(r.contact.as_deref().unwrap()).unwrap(),
            HostPort {
                host: "2a01:ad00:4:2::54".into(),
                port: Some(5080)
            }
        );
        assert_eq!(r.body, b"abc");
        assert_eq!(r.content_type.as_deref(), Some("application/sdp"));

        // 407 with Proxy-Authenticate, LF-only line ends, no Content-Length, odd reason.
        let r407 = "SIP/2.0 407 Proxy Authentication Required\n\
            Via: SIP/2.0/UDP 203.0.113.25:5060;branch=z9hG4bKp\n\
            From: <sip:1@h>;tag=x\nTo: <sip:2@h>;tag=y\nCall-ID: c\nCSeq: 1 INVITE\n\
            Proxy-Authenticate: Digest realm=\"p\", nonce=\"n\"\n\n";
        let r = response_of(r407.as_bytes());
        assert_eq!(r.status, 407);
        let (kind, values) = r.challenges().unwrap();
        assert_eq!(kind, ChallengeKind::Proxy);
        assert_eq!(values.len(), 1);
        assert!(r.body.is_empty());

        // 486 without reason phrase; leading CRLF keepalive before the message.
        let r486 = "\r\n\r\nSIP/2.0 486\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\nFrom: <sip:a@b>;tag=1\r\n\
            To: <sip:c@d>;tag=2\r\nCall-ID: q\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let r = response_of(r486.as_bytes());
        assert_eq!((r.status, r.reason.as_str()), (486, ""));
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        assert_eq!(parse_datagram(b""), Err(Error::Empty));
        assert_eq!(parse_datagram(b"\r\n\r\n"), Err(Error::Empty));
        assert_eq!(parse_datagram(b"hello"), Err(Error::Unterminated));
        assert_eq!(
            parse_datagram(b"\xff\xfe garbage\r\n\r\n"),
            Err(Error::NotUtf8)
        );
        assert_eq!(
            parse_datagram(b"SIP/2.0 99 Low\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"),
            Err(Error::StartLine)
        );
        assert_eq!(
            parse_datagram(b"INVITE sip:a@b SIP/3.0\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"),
            Err(Error::StartLine)
        );
        assert_eq!(
            parse_datagram(
                b"SIP/2.0 200 OK\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCSeq: 1 INVITE\r\n\r\n"
            ),
            Err(Error::MissingHeader("Call-ID"))
        );
        assert_eq!(
            parse_datagram(b"SIP/2.0 200 OK\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: x INVITE\r\n\r\n"),
            Err(Error::BadHeader("CSeq"))
        );
        assert_eq!(
            parse_datagram(b"SIP/2.0 200 OK\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 10\r\n\r\nshort"),
            Err(Error::Truncated)
        );
        assert_eq!(
            parse_datagram(b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n"),
            Err(Error::HeaderLine)
        );
        assert_eq!(
            parse_datagram(b"SIP/2.0 200 OK\r\n folded first\r\n\r\n"),
            Err(Error::HeaderLine)
        );

        // Every truncation of real messages is an Ok or an Err, never a panic.
        for sample in [DIDWW_401, ASTERISK_200, REMOTE_BYE] {
            let bytes = sample.as_bytes();
            for end in 0..bytes.len() {
                let _ = parse_datagram(&bytes[..end]);
            }
            // Flip each byte to a few hostile values.
            for i in 0..bytes.len() {
                for v in [0u8, b'\r', b'\n', b'<', b'"', b';', b':', 0xff] {
                    let mut m = bytes.to_vec();
                    m[i] = v;
                    let _ = parse_datagram(&m);
                }
            }
        }
    }

    #[test]
    fn hosts_numbers_and_ids() {
        assert_eq!(
            HostPort::parse("nyc.us.out.didww.com").unwrap(),
            HostPort {
                host: "nyc.us.out.didww.com".into(),
                port: None
            }
        );
        assert_eq!(
            HostPort::parse("46.19.209.44:5080").unwrap().to_string(),
            "46.19.209.44:5080"
        );
        assert_eq!(
            HostPort::parse("2a01:ad00:1:1::44").unwrap().to_string(),
            "[2a01:ad00:1:1::44]"
        );
        for bad in [
            "",
            "host:",
            "host:0",
            "host:99999",
            "a b",
            "[::1",
            "[nothost]:5",
            "h:+5",
            "-x",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            uri_host_port("<sip:46.19.209.8;r2=on;lr>").unwrap().host,
            "46.19.209.8"
        );
        assert_eq!(
            uri_host_port("sip:+1555;npdi@gw.example:5070;user=phone?x=y").unwrap(),
            HostPort {
                host: "gw.example".into(),
                port: Some(5070)
            }
        );
        assert!(uri_host_port("tel:+15555550123").is_err());
        assert!(uri_host_port("sip:").is_err());

        assert_eq!(e164_digits("+1 (555) 555-0123").unwrap(), "15555550123");
        assert!(e164_digits("1555\r\nX: y").is_err());
        assert!(e164_digits("+").is_err());
        assert!(e164_digits("1234567890123456").is_err());
        assert_eq!(caller_id_for("+15555550123", "4930", Some("1800")), "1800");
        assert_eq!(caller_id_for("4930123", "4930", Some("1800")), "4930");
        assert_eq!(caller_id_for("15555550123", "4930", None), "4930");
        assert!(CallParams::new(endpoint(), "+15555550123", "bad").is_err());
        let p = CallParams::new(endpoint(), "+15555550123", "+4930123").unwrap();
        assert_eq!(p.caller_id, "4930123");

        let b = new_branch();
        assert!(b.starts_with(BRANCH_MAGIC_COOKIE) && b.len() == 23);
        assert_ne!(new_branch(), b);
        assert_eq!(new_tag().len(), 16);
        let cid = new_call_id();
        assert_eq!(uuid::Uuid::parse_str(&cid).unwrap().get_version_num(), 4);
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let mut p = params();
        p.endpoint.user_agent = "evil\r\nX-Injected: 1".into();
        let t = String::from_utf8(invite(&p, 1, "z9hG4bKx", "", &[])).unwrap();
        assert!(!t.contains("\r\nX-Injected"));
        assert!(t.contains("Content-Length: 0\r\n\r\n"));
        assert!(!t.contains("Content-Type"));
    }

    #[test]
    fn uas_reads_the_invite_answers_with_its_tag_and_sends_bye_to_the_contact() {
        let mut p = params();
        p.outbound_route = vec!["<sip:10.0.0.1;lr>".into()];
        let cred = "Digest username=\"u\", realm=\"out.didww.com\", nonce=\"n\", \
                    uri=\"sip:15555550123@out.didww.com\", response=\"0123\"";
        let auth = [AuthorizationHeader {
            name: "Authorization",
            value: cred.into(),
        }];
        let inv = request(&invite(&p, 2, "z9hG4bKuas", "v=0\r\n", &auth));
        assert_eq!(
            inv.contact.as_deref(),
            Some("sip:15555550100@203.0.113.25:5060")
        );
        assert_eq!(inv.authorization, vec![cred.to_owned()]);
        assert!(inv.proxy_authorization.is_empty());
        assert!(inv.record_route.is_empty());
        assert_eq!(
            inv.p_asserted_identity.as_deref(),
            Some("<sip:15555550100@out.didww.com>")
        );

        // 100 has no tag, the others the one given; extra headers and the body follow Server.
        let trying = response_of(
            &response_with(&inv, 100, "Trying", "uas", ResponseExtras::default()).unwrap(),
        );
        assert_eq!(trying.to_tag, None);
        let rr = [
            ("Record-Route", "<sip:127.0.0.1:5099;r2=on;lr>"),
            ("Contact", "<sip:trunk@127.0.0.1:5099>"),
        ];
        let bytes = response_with(
            &inv,
            200,
            "OK",
            "uas",
            ResponseExtras {
                to_tag: Some("dlg1"),
                headers: &rr,
                body: Some(("application/sdp", b"v=0\r\n")),
            },
        )
        .unwrap();
        assert!(text(&bytes).contains(
            "Server: uas\r\nRecord-Route: <sip:127.0.0.1:5099;r2=on;lr>\r\n\
             Contact: <sip:trunk@127.0.0.1:5099>\r\nContent-Type: application/sdp\r\n\
             Content-Length: 5\r\n\r\nv=0\r\n"
        ));
        let ok200 = response_of(&bytes);
        assert_eq!(ok200.to_tag.as_deref(), Some("dlg1"));
        assert_eq!(ok200.record_route.len(), 1);
        let without_tag =
            response_with(&inv, 486, "Busy Here", "uas", ResponseExtras::default()).unwrap();
        assert!(response_of(&without_tag).to_tag.is_some());
        let ack = Request {
            method: Method::Ack,
            ..inv.clone()
        };
        assert!(response_with(&ack, 200, "OK", "uas", ResponseExtras::default()).is_none());

        // The callee's dialog and BYE: to the caller's Contact, From = To + our tag.
        let mut dialog = uas_dialog(&inv, "dlg1").unwrap();
        assert_eq!(dialog.remote_tag.as_deref(), Some("a1b2c3"));
        assert_eq!(dialog.next_hop().unwrap().to_string(), "203.0.113.25:5060");
        let cseq = dialog.next_cseq();
        assert_eq!(cseq, 1);
        let bye = uas_request(
            &dialog,
            "BYE",
            "<sip:15555550123@out.didww.com>;tag=dlg1",
            "127.0.0.1:5099",
            "z9hG4bKbye",
            cseq,
            "uas",
        );
        let bye = request(&bye);
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.uri, "sip:15555550100@203.0.113.25:5060");
        assert_eq!(bye.from_tag.as_deref(), Some("dlg1"));
        assert_eq!(bye.to_tag.as_deref(), Some("a1b2c3"));
        assert_eq!(bye.cseq, 1);
        assert_eq!(bye.via_branch.as_deref(), Some("z9hG4bKbye"));
        // Seen from the caller, that BYE belongs to its dialog.
        let caller_dialog = Dialog {
            call_id: p.call_id.clone(),
            local_tag: p.from_tag.clone(),
            remote_tag: Some("dlg1".into()),
            remote_to: String::new(),
            remote_target: String::new(),
            route_set: Vec::new(),
            invite_cseq: 2,
            local_cseq: 2,
        };
        assert!(caller_dialog.matches(&bye));

        let no_contact = Request {
            contact: None,
            ..inv
        };
        assert_eq!(
            uas_dialog(&no_contact, "x"),
            Err(Error::MissingHeader("Contact"))
        );
    }
}
