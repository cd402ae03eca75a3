//! Reading one UDP datagram as a SIP message (RFC 3261 §7, §18.3) into an [`Incoming`] request or
//! response reduced to what a UAC needs.
//!
//! rsip tokenizes the message: the start line, every header into its [`rsip::Header`] enum, the
//! body. Around it this module does what rsip 0.4 leaves out, each a thing RFC 3261 allows and a
//! trunk or a proxy in its path may send (`tests` below pins each against rsip alone):
//!
//! - **before rsip** (framing): CRLF keepalives before the start line are skipped (§7.5), folded
//!   header lines joined (§7.3.1), whitespace before a header colon dropped, LF-only line ends and
//!   a lower-case `sip/2.0` accepted, a status line without reason phrase completed (§25.1). A
//!   request line rsip refuses — an extension method (which must be read to be answered 405,
//!   §8.2.1), an IPv6 Request-URI (DIDWW signals over IPv6), a `tel:` URI, a `:` in a URI
//!   parameter value — is read here, and rsip reads the rest of the message behind a neutral
//!   stand-in line;
//! - **after rsip**: the reason phrase is taken from the wire (rsip swaps in its own table's text;
//!   events report the carrier's), the body is cut to Content-Length (§18.3; rsip keeps trailing
//!   datagram bytes), compact header names are expanded (rsip files `v:` under `Other`), and the
//!   values a UAC needs are read from the untyped headers — rsip's typed headers reject IPv6 hosts
//!   and `qop` lists, and a Record-Route or Contact must be echoed byte for byte anyway.
//!
//! No rsip type leaves this file; the result is plain strings and numbers. Never panics: anything
//! malformed is an [`Error`].

use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::Header;

use super::digest::ChallengeKind;
use super::message::{angle_uri, param_value, split_list, tag_of, Error, Method, MAX_CSEQ};

/// A datagram read by [`parse_datagram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A request from the peer (BYE, OPTIONS, re-INVITE, …).
    Request(Request),
    /// A response to one of our requests.
    Response(Response),
}

/// A response, reduced to what a UAC needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100–699.
    pub status: u16,
    /// Reason phrase as sent (may be empty).
    pub reason: String,
    /// Branch of the top Via: the client transaction it answers (RFC 3261 §17.1.3).
    pub via_branch: Option<String>,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method (with the branch, identifies the transaction).
    pub cseq_method: Method,
    /// Call-ID.
    pub call_id: String,
    /// From tag (ours).
    pub from_tag: Option<String>,
    /// The To value as received, copied into the ACK of a non-2xx and kept by the dialog.
    pub to: String,
    /// To tag (the remote tag).
    pub to_tag: Option<String>,
    /// Record-Route entries in message order, each a name-addr as received
    /// (`<sip:46.19.209.8;r2=on;lr>`).
    pub record_route: Vec<String>,
    /// URI of the first Contact, without `<>`.
    pub contact: Option<String>,
    /// `WWW-Authenticate` values in order (one challenge each).
    pub www_authenticate: Vec<String>,
    /// `Proxy-Authenticate` values in order.
    pub proxy_authenticate: Vec<String>,
    /// Content-Type, if any.
    pub content_type: Option<String>,
    /// Body (exactly Content-Length bytes when that header is present).
    pub body: Vec<u8>,
}

impl Response {
    /// 1xx.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// For a 401 or 407, its kind and challenge values (to pass to `DigestSession::on_challenge`).
    pub fn challenges(&self) -> Option<(ChallengeKind, &[String])> {
        match ChallengeKind::from_status(self.status)? {
            ChallengeKind::Www => Some((ChallengeKind::Www, &self.www_authenticate)),
            ChallengeKind::Proxy => Some((ChallengeKind::Proxy, &self.proxy_authenticate)),
        }
    }

    /// The body as text, if it is UTF-8 (SDP is).
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// A request from the peer, with the header values a response must copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method of the request line.
    pub method: Method,
    /// Request-URI as sent.
    pub uri: String,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method.
    pub cseq_method: Method,
    /// Branch of the top Via (the server transaction, RFC 3261 §17.2.3).
    pub via_branch: Option<String>,
    /// Every Via value, top first, copied into responses.
    pub vias: Vec<String>,
    /// From value as received.
    pub from: String,
    /// From tag (the peer's).
    pub from_tag: Option<String>,
    /// To value as received.
    pub to: String,
    /// To tag (ours, for an in-dialog request).
    pub to_tag: Option<String>,
    /// URI of the first Contact, without `<>` (the remote target of a dialog the request creates,
    /// RFC 3261 §12.1.1).
    pub contact: Option<String>,
    /// Record-Route entries in message order, each a name-addr as received (the route set of a
    /// dialog a UAS creates, in this order, RFC 3261 §12.1.1).
    pub record_route: Vec<String>,
    /// `Authorization` values in order (RFC 3261 §22.2).
    pub authorization: Vec<String>,
    /// `Proxy-Authorization` values in order (RFC 3261 §22.3).
    pub proxy_authorization: Vec<String>,
    /// The first `P-Asserted-Identity` value as received (RFC 3325 §9.1).
    pub p_asserted_identity: Option<String>,
    /// Content-Type, if any.
    pub content_type: Option<String>,
    /// Body (exactly Content-Length bytes when that header is present).
    pub body: Vec<u8>,
}

impl Request {
    /// The body as text, if it is UTF-8 (SDP is).
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// Request line handed to rsip in place of one its grammar cannot hold; the real method and
/// Request-URI are kept from the wire. `.invalid` (RFC 2606) can never name a real host.
const STAND_IN_REQUEST_LINE: &str = "OPTIONS sip:stand-in.invalid SIP/2.0";

/// Reads one SIP message from a UDP datagram (RFC 3261 §7, §18.3): framed here, tokenized by
/// rsip, then reduced to the fields of [`Request`] or [`Response`]. Requires Via, From, To,
/// Call-ID and CSeq (§8.1.1).
pub fn parse_datagram(data: &[u8]) -> Result<Incoming, Error> {
    let frame = Frame::read(data)?;
    let message = match rsip::SipMessage::try_from(frame.for_rsip.as_slice()) {
        Ok(message) => message,
        // rsip's request line grammar is narrower than RFC 3261's (extension methods, IPv6
        // and some parameter forms in the Request-URI): what it refuses there, it may read
        // behind the stand-in line. A fault in the headers fails again and is reported.
        Err(err) => match frame.behind_stand_in() {
            Some(bytes) => rsip::SipMessage::try_from(bytes.as_slice()).map_err(syntax_error)?,
            None => return Err(syntax_error(err)),
        },
    };
    let headers = Headers::from_rsip(message.headers());
    let body = match headers.first("content-length") {
        None => message.body().as_slice(),
        Some(len) => {
            let len = Some(len)
                .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|l| l.parse::<usize>().ok())
                .ok_or(Error::BadHeader("Content-Length"))?;
            message.body().get(..len).ok_or(Error::Truncated)?
        }
    }
    .to_vec();

    let vias = headers.list("via");
    let top_via = vias.first().ok_or(Error::MissingHeader("Via"))?;
    let via_branch = via_branch(top_via);
    let from = headers.required("from", "From")?.to_owned();
    let to = headers.required("to", "To")?.to_owned();
    let call_id = headers.required("call-id", "Call-ID")?.to_owned();
    let (cseq, cseq_method) = parse_cseq(headers.required("cseq", "CSeq")?)?;
    let content_type = headers.first("content-type").map(str::to_owned);

    match (frame.start, message) {
        (StartLine::Status { reason }, rsip::SipMessage::Response(response)) => {
            let status = response.status_code().code();
            if !(100..=699).contains(&status) {
                return Err(Error::StartLine);
            }
            Ok(Incoming::Response(Response {
                status,
                reason,
                via_branch,
                cseq,
                cseq_method,
                call_id,
                from_tag: tag_of(&from),
                to_tag: tag_of(&to),
                to,
                record_route: headers.list("record-route"),
                contact: first_contact(&headers),
                www_authenticate: headers.all("www-authenticate").map(str::to_owned).collect(),
                proxy_authenticate: headers
                    .all("proxy-authenticate")
                    .map(str::to_owned)
                    .collect(),
                content_type,
                body,
            }))
        }
        (StartLine::Request { method, uri }, rsip::SipMessage::Request(_)) => {
            Ok(Incoming::Request(Request {
                method,
                uri,
                call_id,
                cseq,
                cseq_method,
                via_branch,
                from_tag: tag_of(&from),
                to_tag: tag_of(&to),
                vias,
                from,
                to,
                contact: first_contact(&headers),
                record_route: headers.list("record-route"),
                authorization: headers.all("authorization").map(str::to_owned).collect(),
                proxy_authorization: headers
                    .all("proxy-authorization")
                    .map(str::to_owned)
                    .collect(),
                p_asserted_identity: headers.first("p-asserted-identity").map(str::to_owned),
                content_type,
                body,
            }))
        }
        // rsip read a request where we saw a status line or the reverse: not SIP as we know it.
        _ => Err(Error::StartLine),
    }
}

/// rsip's error text quotes the whole message, numbers and all, over many lines: not for logs.
fn syntax_error(_: rsip::Error) -> Error {
    Error::Syntax
}

/// What the start line says, read from the wire (rsip keeps neither of these faithfully).
enum StartLine {
    Status { reason: String },
    Request { method: Method, uri: String },
}

/// A datagram framed for rsip: the message as rsip's grammar reads it, and the start line as sent.
struct Frame {
    start: StartLine,
    for_rsip: Vec<u8>,
    /// Length of the start line at the front of `for_rsip`.
    start_len: usize,
}

impl Frame {
    /// Skips leading whitespace (§7.5 keepalives), reads the start line, rewrites the header section
    /// with CRLF line ends, folded lines joined and no whitespace before colons, and appends the
    /// rest of the datagram unchanged (its body is cut to Content-Length after rsip).
    fn read(data: &[u8]) -> Result<Frame, Error> {
        let start = data
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .ok_or(Error::Empty)?;
        let (head, rest) = split_head(&data[start..])?;
        let head = std::str::from_utf8(head).map_err(|_| Error::NotUtf8)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let (start, start_line) = read_start_line(lines.next().ok_or(Error::StartLine)?)?;

        let mut text = String::with_capacity(head.len() + 8);
        text.push_str(&start_line);
        let start_len = text.len();
        let mut has_header = false;
        for line in lines {
            // A control character inside a line (a bare CR, a NUL) would let a value copied into
            // our responses split them into extra lines.
            if line.bytes().any(|b| b < 0x20 && b != b'\t') {
                return Err(Error::HeaderLine);
            }
            if line.starts_with([' ', '\t']) {
                // Folded continuation (§7.3.1): the same as one space.
                if !has_header {
                    return Err(Error::HeaderLine);
                }
                text.truncate(text.trim_end().len());
                text.push(' ');
                text.push_str(line.trim());
                continue;
            }
            let (name, value) = line.split_once(':').ok_or(Error::HeaderLine)?;
            text.push_str("\r\n");
            text.push_str(name.trim_end());
            text.push(':');
            text.push_str(value);
            has_header = true;
        }
        text.push_str("\r\n\r\n");
        let mut for_rsip = text.into_bytes();
        for_rsip.extend_from_slice(rest);
        Ok(Frame {
            start,
            for_rsip,
            start_len,
        })
    }

    /// The message with [`STAND_IN_REQUEST_LINE`] for its request line; `None` for a response.
    fn behind_stand_in(&self) -> Option<Vec<u8>> {
        let StartLine::Request { .. } = self.start else {
            return None;
        };
        let rest = &self.for_rsip[self.start_len..];
        let mut bytes = Vec::with_capacity(STAND_IN_REQUEST_LINE.len() + rest.len());
        bytes.extend_from_slice(STAND_IN_REQUEST_LINE.as_bytes());
        bytes.extend_from_slice(rest);
        Some(bytes)
    }
}

/// Reads a status line (`SIP/2.0 180 Ringing`, reason optional) or a request line
/// (`BYE sip:… SIP/2.0`); returns it with the line rsip is given.
fn read_start_line(line: &str) -> Result<(StartLine, String), Error> {
    // The reason phrase reaches events, webhooks and logs: no control characters in it.
    if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Error::StartLine);
    }
    let (first, rest) = line.split_once(' ').ok_or(Error::StartLine)?;
    if is_sip_2(first) {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::StartLine);
        }
        let reason = reason.trim().to_owned();
        let for_rsip = format!("SIP/2.0 {code} {reason}");
        return Ok((StartLine::Status { reason }, for_rsip));
    }

    let mut parts = rest.split(' ');
    let (Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::StartLine);
    };
    let method = Method::parse(first).ok_or(Error::StartLine)?;
    if !is_sip_2(version) || !uri.contains(':') {
        return Err(Error::StartLine);
    }
    let for_rsip = format!("{first} {uri} SIP/2.0");
    let uri = uri.to_owned();
    Ok((StartLine::Request { method, uri }, for_rsip))
}

/// SIP-Version is case-insensitive (§7.1); rsip only reads `SIP/`.
fn is_sip_2(token: &str) -> bool {
    token.eq_ignore_ascii_case("SIP/2.0")
}

/// Finds the blank line ending the headers (CRLF CRLF, or LF LF from sloppy peers); returns
/// (header section, rest).
fn split_head(data: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    for (i, &b) in data.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        match (data.get(i + 1), data.get(i + 2)) {
            (Some(b'\n'), _) => return Ok((&data[..i], &data[i + 2..])),
            (Some(b'\r'), Some(b'\n')) => return Ok((&data[..i], &data[i + 3..])),
            _ => {}
        }
    }
    Err(Error::Unterminated)
}

/// Headers of a message as rsip read them, names canonical and lower-case, values trimmed; only
/// those a UAC reads are kept.
struct Headers(Vec<(String, String)>);

impl Headers {
    fn from_rsip(headers: &rsip::Headers) -> Headers {
        let kept = headers.iter().filter_map(|header| {
            let (name, value) = match header {
                Header::Via(h) => ("via".to_owned(), h.value()),
                Header::From(h) => ("from".to_owned(), h.value()),
                Header::To(h) => ("to".to_owned(), h.value()),
                Header::CallId(h) => ("call-id".to_owned(), h.value()),
                Header::CSeq(h) => ("cseq".to_owned(), h.value()),
                Header::Contact(h) => ("contact".to_owned(), h.value()),
                Header::RecordRoute(h) => ("record-route".to_owned(), h.value()),
                Header::ContentLength(h) => ("content-length".to_owned(), h.value()),
                Header::ContentType(h) => ("content-type".to_owned(), h.value()),
                Header::WwwAuthenticate(h) => ("www-authenticate".to_owned(), h.value()),
                Header::ProxyAuthenticate(h) => ("proxy-authenticate".to_owned(), h.value()),
                Header::Authorization(h) => ("authorization".to_owned(), h.value()),
                Header::ProxyAuthorization(h) => ("proxy-authorization".to_owned(), h.value()),
                Header::Other(name, value) => (canonical_name(name), value.as_str()),
                _ => return None,
            };
            Some((name, value.trim().to_owned()))
        });
        Headers(kept.collect())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn first<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }

    fn required<'a>(&'a self, name: &'a str, label: &'static str) -> Result<&'a str, Error> {
        self.first(name)
            .filter(|v| !v.is_empty())
            .ok_or(Error::MissingHeader(label))
    }

    /// Entries of a comma-separable header over all its occurrences, in order.
    fn list(&self, name: &str) -> Vec<String> {
        self.all(name).flat_map(split_list).collect()
    }
}

/// Full lower-case header name, expanding compact forms (RFC 3261 §7.3.3, RFC 3265/3515/4028/
/// 3841), which rsip does not know.
fn canonical_name(name: &str) -> String {
    let full = match name {
        "i" | "I" => "call-id",
        "m" | "M" => "contact",
        "e" | "E" => "content-encoding",
        "l" | "L" => "content-length",
        "c" | "C" => "content-type",
        "f" | "F" => "from",
        "s" | "S" => "subject",
        "k" | "K" => "supported",
        "t" | "T" => "to",
        "v" | "V" => "via",
        "o" | "O" => "event",
        "r" | "R" => "refer-to",
        "u" | "U" => "allow-events",
        "x" | "X" => "session-expires",
        "b" | "B" => "referred-by",
        _ => return name.to_ascii_lowercase(),
    };
    full.to_owned()
}

/// Parses `1*DIGIT LWS Method` (RFC 3261 §20.16); rsip's typed CSeq knows no extension methods.
fn parse_cseq(value: &str) -> Result<(u32, Method), Error> {
    let mut parts = value.split_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::BadHeader("CSeq"));
    };
    let number = match number.parse::<u32>() {
        Ok(n) if n <= MAX_CSEQ && number.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return Err(Error::BadHeader("CSeq")),
    };
    let method = Method::parse(method).ok_or(Error::BadHeader("CSeq"))?;
    Ok((number, method))
}

/// The branch parameter of a Via value (`SIP/2.0/UDP host:port;branch=…`).
fn via_branch(via: &str) -> Option<String> {
    let params = &via[via.find(';')?..];
    param_value(params, "branch").filter(|b| !b.is_empty())
}

/// URI of the first Contact, without `<>`; `None` for `*` or nothing.
fn first_contact(headers: &Headers) -> Option<String> {
    headers
        .list("contact")
        .first()
        .map(|c| angle_uri(c).to_owned())
        .filter(|c| c != "*" && !c.is_empty())
}

#[cfg(test)]
mod tests {
    //! Each RFC 3261 case rsip 0.4 cannot read alone is read through the framing, and checked to
    //! still fail in rsip alone: when an rsip release fixes one, its test fails, telling us that
    //! part of the framing can go.

    use super::*;

    /// Headers every message below shares.
    const HEADERS: &str = "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK-1\r\n\
From: <sip:15550100000@192.0.2.10>;tag=a1\r\n\
To: <sip:14155552671@out.didww.com>;tag=b2\r\n\
Call-ID: c3@192.0.2.10\r\n";

    fn rsip_alone(text: &str) -> Option<rsip::SipMessage> {
        rsip::SipMessage::try_from(text).ok()
    }

    fn read(text: &str) -> Incoming {
        parse_datagram(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn response(text: &str) -> Response {
        match read(text) {
            Incoming::Response(r) => r,
            Incoming::Request(r) => panic!("not a response: {r:?}"),
        }
    }

    fn request(text: &str) -> Request {
        match read(text) {
            Incoming::Request(r) => r,
            Incoming::Response(r) => panic!("not a request: {r:?}"),
        }
    }

    #[test]
    fn a_plain_message_goes_through_rsip_unchanged() {
        let text =
            format!("SIP/2.0 180 Ringing\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
        assert!(rsip_alone(&text).is_some());
        let frame = Frame::read(text.as_bytes()).unwrap();
        assert_eq!(frame.for_rsip, text.as_bytes());
        let r = response(&text);
        assert_eq!((r.status, r.reason.as_str()), (180, "Ringing"));
        assert_eq!(r.call_id, "c3@192.0.2.10");
        assert_eq!(r.to_tag.as_deref(), Some("b2"));
    }

    #[test]
    fn a_status_line_without_reason_phrase_is_read() {
        // §25.1 allows an empty Reason-Phrase; some devices also drop the space before it.
        let text = format!("SIP/2.0 180\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
        let r = response(&text);
        assert_eq!((r.status, r.reason.as_str()), (180, ""));
        assert!(rsip_alone(&text).is_none());
    }

    #[test]
    fn the_reason_phrase_is_kept_as_sent() {
        // Events report the carrier's reason; rsip replaces it with its own table's text.
        let text = format!(
            "SIP/2.0 480 Nobody Home\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(response(&text).reason, "Nobody Home");
        let rsip = rsip_alone(&text).map(|m| m.to_string()).unwrap_or_default();
        assert!(!rsip.contains("Nobody Home"), "{rsip}");
    }

    #[test]
    fn an_ipv6_request_uri_is_read_and_kept_as_sent() {
        // DIDWW signals over IPv6 too (reference §4.3): its BYE may target [v6]:port.
        let text = format!(
            "BYE sip:[2001:db8::1]:5060;transport=udp SIP/2.0\r\n{HEADERS}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        let r = request(&text);
        assert_eq!(r.method, Method::Bye);
        assert_eq!(r.uri, "sip:[2001:db8::1]:5060;transport=udp");
        assert_eq!((r.cseq, r.cseq_method), (2, Method::Bye));
        assert!(rsip_alone(&text).is_none());
    }

    #[test]
    fn other_request_uris_rsip_refuses_are_read_and_kept_as_sent() {
        // RFC 3261 §25.1 allows `:` in a parameter value and any absolute URI as Request-URI;
        // rsip's request line grammar takes neither.
        for uri in ["sip:15550100000@192.0.2.10;x-route=a:b", "tel:+15550100000"] {
            let text =
                format!("BYE {uri} SIP/2.0\r\n{HEADERS}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n");
            let r = request(&text);
            assert_eq!((r.method, r.uri.as_str()), (Method::Bye, uri));
            assert!(rsip_alone(&text).is_none(), "{uri}");
        }
    }

    #[test]
    fn a_fault_in_the_headers_is_not_hidden_by_the_stand_in() {
        let text =
            format!("FOO sip:a@192.0.2.10 SIP/2.0\r\n{HEADERS}CSeq: 3 FOO\r\nBad(Name): x\r\n\r\n");
        assert!(matches!(
            parse_datagram(text.as_bytes()),
            Err(Error::Syntax)
        ));
    }

    #[test]
    fn a_folded_line_joins_with_exactly_one_space() {
        let text = format!("SIP/2.0 200 OK\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Type: application/sdp \t\r\n \t ;x=1\r\n\r\n");
        assert_eq!(
            response(&text).content_type.as_deref(),
            Some("application/sdp ;x=1")
        );
    }

    #[test]
    fn extension_methods_are_read_so_they_can_be_answered() {
        // §8.2.1: an unsupported method gets 405 — which needs the request read first.
        let text = format!(
            "FOO sip:15550100000@192.0.2.10 SIP/2.0\r\n{HEADERS}CSeq: 3 FOO\r\nContent-Length: 0\r\n\r\n"
        );
        let r = request(&text);
        assert_eq!(r.method, Method::Other("FOO".into()));
        assert_eq!(r.uri, "sip:15550100000@192.0.2.10");
        assert_eq!(r.cseq_method, Method::Other("FOO".into()));
        assert_eq!(r.vias.len(), 1);
        assert!(rsip_alone(&text).is_none());
    }

    #[test]
    fn methods_are_case_sensitive() {
        // §7.1: `bye` is not BYE (rsip would take it for one).
        let text = format!(
            "bye sip:a@192.0.2.10 SIP/2.0\r\n{HEADERS}CSeq: 2 bye\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(request(&text).method, Method::Other("bye".into()));
    }

    #[test]
    fn folded_headers_and_space_before_the_colon_are_read() {
        // §7.3.1: header values may continue on lines starting with whitespace, and whitespace
        // may precede the colon.
        let folded = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.4:5060\r\n ;branch=z9hG4bK-9\r\n\
             From: <sip:a@192.0.2.10>;tag=a1\r\nTo : <sip:b@192.0.2.4>;tag=b2\r\n\
             Call-ID: c3\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let r = response(folded);
        assert_eq!(r.via_branch.as_deref(), Some("z9hG4bK-9"));
        assert_eq!(r.to_tag.as_deref(), Some("b2"));
        assert!(rsip_alone(folded).is_none());
    }

    #[test]
    fn leading_crlf_keepalives_are_skipped() {
        // §7.5: implementations should ignore CRLFs before the start line (RFC 5626 keepalives).
        let text = format!(
            "\r\n\r\nSIP/2.0 100 Trying\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(response(&text).status, 100);
        assert!(rsip_alone(&text).is_none());
    }

    #[test]
    fn the_body_ends_at_content_length() {
        // §18.3: bytes past Content-Length in a datagram are not part of the message.
        let text = format!(
            "SIP/2.0 200 OK\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 3\r\n\r\nv=0JUNK"
        );
        assert_eq!(response(&text).body, b"v=0");
        let rsip_body = rsip_alone(&text)
            .map(|m| m.body().clone())
            .unwrap_or_default();
        assert_eq!(rsip_body, b"v=0JUNK");
    }

    #[test]
    fn compact_header_names_are_read() {
        // §7.3.3: `v`, `f`, `t`, `i`, `m`, `l`, `c`; rsip files them under `Other`.
        let text = "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK-c\r\n\
            f: <sip:a@192.0.2.10>;tag=a1\r\nt: <sip:b@192.0.2.4>;tag=b2\r\ni: compact\r\n\
            CSeq: 1 INVITE\r\nm: <sip:b@192.0.2.4:5070>\r\nc: application/sdp\r\nl: 3\r\n\r\nv=0";
        let r = response(text);
        assert_eq!(r.via_branch.as_deref(), Some("z9hG4bK-c"));
        assert_eq!(
            (r.call_id.as_str(), r.to_tag.as_deref()),
            ("compact", Some("b2"))
        );
        assert_eq!(r.contact.as_deref(), Some("sip:b@192.0.2.4:5070"));
        assert_eq!(r.content_type.as_deref(), Some("application/sdp"));
        assert_eq!(r.body, b"v=0");
    }

    #[test]
    fn lf_line_ends_and_a_lower_case_version_are_read() {
        let text = "sip/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK-l\n\
            From: <sip:a@h>;tag=1\nTo: <sip:b@h>;tag=2\nCall-ID: lf\nCSeq: 1 INVITE\n\n";
        assert_eq!(response(text).call_id, "lf");
        assert!(rsip_alone(text).is_none());
    }

    #[test]
    fn what_rsip_cannot_read_is_a_syntax_error() {
        // A header name with a character outside `token` reaches rsip, which refuses it.
        let text = format!("SIP/2.0 200 OK\r\n{HEADERS}CSeq: 1 INVITE\r\nBad(Name): x\r\n\r\n");
        assert!(matches!(
            parse_datagram(text.as_bytes()),
            Err(Error::Syntax)
        ));
        // A second version: only SIP/2.0 is spoken.
        let text = format!("SIP/1.0 200 OK\r\n{HEADERS}CSeq: 1 INVITE\r\n\r\n");
        assert_eq!(parse_datagram(text.as_bytes()), Err(Error::StartLine));
    }

    #[test]
    fn a_content_length_must_be_digits() {
        let text =
            format!("SIP/2.0 200 OK\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: +3\r\n\r\nv=0");
        assert_eq!(
            parse_datagram(text.as_bytes()),
            Err(Error::BadHeader("Content-Length"))
        );
    }

    #[test]
    fn control_characters_in_the_start_line_are_refused() {
        for line in [
            "SIP/2.0 480 Nobody\0Home",
            "SIP/2.0 480 Nobody\rHome",
            "BYE sip:a@b\x7f SIP/2.0",
        ] {
            let text = format!("{line}\r\n{HEADERS}CSeq: 1 INVITE\r\n\r\n");
            assert_eq!(
                parse_datagram(text.as_bytes()),
                Err(Error::StartLine),
                "{line:?}"
            );
        }
    }

    #[test]
    fn control_characters_inside_a_line_are_refused() {
        // A bare CR in a value we copy into a response would split it into two lines.
        let text =
            format!("SIP/2.0 200 OK\r\n{HEADERS}CSeq: 1 INVITE\r\nX-A: a\rInjected: b\r\n\r\n");
        assert_eq!(parse_datagram(text.as_bytes()), Err(Error::HeaderLine));
    }
}
