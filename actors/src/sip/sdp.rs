//! SDP for the call's one audio stream (RFC 4566 syntax, RFC 3264 offer/answer): our offer of
//! PCMU, PCMA and telephone-event (RFC 3551 static types 0 and 8, RFC 4733 events 0–16 on
//! payload type 101) at `PUBLIC_IP`, reading the peer's answer (address, port, codec, event payload
//! type, ptime, direction), and answering a re-INVITE's offer without changing our media.
//!
//! Sans-IO and allocation-light; the parser never panics and refuses anything it cannot use with
//! an [`SdpError`] the call can report.

use std::net::{IpAddr, SocketAddr};

use crate::rtp::g711::Codec;

use super::message::random_hex;

/// Payload type we offer for telephone-event (the usual dynamic choice, as in DIDWW's example).
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Packet time we offer and send (RFC 3551 §4.5 default for G.711).
pub const PTIME_MS: u32 = 20;

/// Why an SDP body is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not SDP: no `v=0` first, or a line that is not `<letter>=<value>`, or a bad `m=`/`c=` line.
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    /// No `m=audio` stream.
    #[error("SDP has no audio stream")]
    NoAudio,
    /// The audio stream has port 0: the peer rejected it (RFC 3264 §6).
    #[error("audio stream rejected (port 0)")]
    AudioRejected,
    /// Neither the audio stream nor the session has a `c=` line.
    #[error("SDP has no connection address")]
    NoConnection,
    /// The `c=` address is not an IP literal (an FQDN, which RTP here cannot resolve).
    #[error("connection address {0:?} is not an IP address")]
    UnsupportedAddress(String),
    /// The audio stream is not plain `RTP/AVP` (e.g. SRTP's `RTP/SAVP`).
    #[error("unsupported media transport {0:?}")]
    UnsupportedTransport(String),
    /// The stream lists neither PCMU nor PCMA.
    #[error("no codec in common (PCMU/PCMA)")]
    NoCommonCodec,
}

/// Media direction attribute (RFC 3264 §5.1, §6.1), from the SDP author's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv` (also the default).
    SendRecv,
    /// `a=sendonly`: the author sends, will not receive (e.g. holding us).
    SendOnly,
    /// `a=recvonly`: the author receives only.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer must take for an offer with this one (RFC 3264 §6.1).
    pub const fn reversed(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether the author of this SDP wants to receive media from us.
    pub const fn author_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn parse(attr: &str) -> Option<Self> {
        match attr {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// The peer's audio stream as its SDP describes it: where to send RTP and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Connection address (media-level `c=` over session-level).
    pub address: IpAddr,
    /// RTP port.
    pub port: u16,
    /// The codec to send: the first of the stream's formats that is PCMU or PCMA.
    pub codec: Codec,
    /// The payload type the peer listed for `codec` (0 or 8 unless it used a dynamic number),
    /// the one to put in our RTP packets (RFC 3264 §6.1).
    pub payload_type: u8,
    /// The peer's telephone-event payload type, if it accepts RFC 4733 events.
    pub telephone_event: Option<u8>,
    /// `a=ptime` (media-level over session-level), if given.
    pub ptime_ms: Option<u32>,
    /// The peer's direction attribute (sendrecv when absent).
    pub direction: Direction,
}

impl RemoteMedia {
    /// Where RTP goes (symmetric RTP may later replace it with the observed source).
    pub fn rtp_destination(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// One `m=` section with what this module reads from it.
#[derive(Debug, Default)]
struct MediaSection<'a> {
    kind: &'a str,
    port: u16,
    proto: &'a str,
    formats: Vec<&'a str>,
    connection: Option<&'a str>,
    rtpmaps: Vec<(u8, &'a str)>,
    ptime: Option<u32>,
    direction: Option<Direction>,
}

/// A parsed session description: session-level `c=`, ptime and direction, and the media sections.
#[derive(Debug, Default)]
struct Description<'a> {
    connection: Option<&'a str>,
    ptime: Option<u32>,
    direction: Option<Direction>,
    media: Vec<MediaSection<'a>>,
}

/// Reads the lines of an SDP body (RFC 4566 §5; CRLF or LF; blank lines skipped).
fn parse_description(body: &str) -> Result<Description<'_>, SdpError> {
    let mut lines = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty());
    if lines.next().map(str::trim) != Some("v=0") {
        return Err(SdpError::Malformed("does not start with v=0"));
    }
    let mut desc = Description::default();
    for line in lines {
        let (kind, value) = line
            .split_once('=')
            .filter(|(k, _)| k.len() == 1 && k.bytes().all(|b| b.is_ascii_lowercase()))
            .ok_or(SdpError::Malformed("line is not <type>=<value>"))?;
        let value = value.trim();
        match kind {
            "m" => desc.media.push(parse_media_line(value)?),
            "c" => {
                let slot = match desc.media.last_mut() {
                    Some(m) => &mut m.connection,
                    None => &mut desc.connection,
                };
                slot.get_or_insert(value);
            }
            "a" => {
                let (name, arg) = match value.split_once(':') {
                    Some((n, a)) => (n, Some(a.trim())),
                    None => (value, None),
                };
                let media = desc.media.last_mut();
                match (name, arg) {
                    ("rtpmap", Some(arg)) => {
                        if let (Some(m), Some((pt, enc))) = (media, arg.split_once(' ')) {
                            if let Ok(pt) = pt.trim().parse::<u8>() {
                                m.rtpmaps.push((pt, enc.trim()));
                            }
                        }
                    }
                    ("ptime", Some(arg)) => {
                        let ptime = arg.parse::<u32>().ok().filter(|p| *p > 0);
                        match media {
                            Some(m) => m.ptime = m.ptime.or(ptime),
                            None => desc.ptime = desc.ptime.or(ptime),
                        }
                    }
                    (attr, None) => {
                        if let Some(dir) = Direction::parse(attr) {
                            match media {
                                Some(m) => m.direction = Some(dir),
                                None => desc.direction = Some(dir),
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(desc)
}

/// `m=<media> <port>[/<count>] <proto> <fmt> …` (RFC 4566 §5.14).
fn parse_media_line(value: &str) -> Result<MediaSection<'_>, SdpError> {
    let mut parts = value.split_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SdpError::Malformed("m= line needs media, port and proto"));
    };
    let port = port
        .split('/')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or(SdpError::Malformed("m= port is not a number"))?;
    Ok(MediaSection {
        kind,
        port,
        proto,
        formats: parts.collect(),
        ..MediaSection::default()
    })
}

/// The address of `c=IN IP4 <addr>[/ttl]` or `c=IN IP6 <addr>` (RFC 4566 §5.7).
fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut parts = value.split_whitespace();
    let (Some(net), Some(addr_type), Some(address)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SdpError::Malformed(
            "c= line needs nettype, addrtype and address",
        ));
    };
    if !net.eq_ignore_ascii_case("IN")
        || !(addr_type.eq_ignore_ascii_case("IP4") || addr_type.eq_ignore_ascii_case("IP6"))
    {
        return Err(SdpError::UnsupportedAddress(value.to_owned()));
    }
    let address = address.split('/').next().unwrap_or_default();
    address
        .parse::<IpAddr>()
        .map_err(|_| SdpError::UnsupportedAddress(address.to_owned()))
}

/// What a format of a media section maps to: `(encoding name, clock rate)` from its rtpmap, or the
/// RFC 3551 static assignment for 0 and 8 when there is no rtpmap.
fn encoding_of<'a>(media: &MediaSection<'a>, pt: u8) -> Option<(&'a str, &'a str)> {
    match media.rtpmaps.iter().find(|(p, _)| *p == pt) {
        Some((_, enc)) => {
            let mut it = enc.split('/');
            Some((it.next()?.trim(), it.next().unwrap_or_default().trim()))
        }
        None => match pt {
            0 => Some(("PCMU", "8000")),
            8 => Some(("PCMA", "8000")),
            _ => None,
        },
    }
}

/// The codec of an encoding name at 8 kHz.
fn codec_of(name: &str, clock: &str) -> Option<Codec> {
    if clock != "8000" {
        return None;
    }
    [Codec::Pcmu, Codec::Pcma]
        .into_iter()
        .find(|c| name.eq_ignore_ascii_case(c.encoding_name()))
}

/// The first audio stream of `body` reduced to [`RemoteMedia`]; `preferred` (the codec already in
/// use) wins when listed, else the stream's first PCMU/PCMA format, honouring its order.
fn remote_media(body: &str, preferred: Option<Codec>) -> Result<RemoteMedia, SdpError> {
    let desc = parse_description(body)?;
    let media = desc
        .media
        .iter()
        .find(|m| m.kind.eq_ignore_ascii_case("audio"))
        .ok_or(SdpError::NoAudio)?;
    if media.port == 0 {
        return Err(SdpError::AudioRejected);
    }
    if !media.proto.eq_ignore_ascii_case("RTP/AVP") {
        return Err(SdpError::UnsupportedTransport(media.proto.to_owned()));
    }
    let connection = media
        .connection
        .or(desc.connection)
        .ok_or(SdpError::NoConnection)?;
    let address = parse_connection(connection)?;

    let formats: Vec<(u8, Option<(&str, &str)>)> = media
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok().filter(|pt| *pt < 128))
        .map(|pt| (pt, encoding_of(media, pt)))
        .collect();
    let codecs: Vec<(Codec, u8)> = formats
        .iter()
        .filter_map(|(pt, enc)| enc.and_then(|(n, c)| codec_of(n, c)).map(|c| (c, *pt)))
        .collect();
    let (codec, payload_type) = preferred
        .and_then(|p| codecs.iter().find(|(c, _)| *c == p))
        .or_else(|| codecs.first())
        .copied()
        .ok_or(SdpError::NoCommonCodec)?;
    let telephone_event = formats.iter().find_map(|(pt, enc)| match enc {
        Some((name, "8000")) if name.eq_ignore_ascii_case("telephone-event") => Some(*pt),
        _ => None,
    });

    Ok(RemoteMedia {
        address,
        port: media.port,
        codec,
        payload_type,
        telephone_event,
        ptime_ms: media.ptime.or(desc.ptime),
        direction: media
            .direction
            .or(desc.direction)
            .unwrap_or(Direction::SendRecv),
    })
}

/// Reads the answer to our offer (RFC 3264 §7): the first audio stream, its connection address,
/// the first PCMU/PCMA format it lists, telephone-event, ptime and direction. Port 0, no common
/// codec, SRTP or an FQDN address are errors.
pub fn parse_answer(body: &str) -> Result<RemoteMedia, SdpError> {
    remote_media(body, None)
}

/// Our side of the session: the `o=` identity and version (RFC 4566 §5.2, RFC 3264 §8) and the
/// RTP address we advertise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpSession {
    address: IpAddr,
    rtp_port: u16,
    session_id: u64,
    version: u64,
    /// Everything after the `o=` line of the last SDP we produced, to detect changes.
    last_media: Option<String>,
    /// The last SDP we produced, complete.
    last_body: Option<String>,
    /// The `s=` line.
    name: &'static str,
}

impl SdpSession {
    /// A session advertising `address` (`PUBLIC_IP`) and `rtp_port`, with a random session id.
    pub fn new(address: IpAddr, rtp_port: u16) -> Self {
        let id = u64::from_str_radix(&random_hex(4), 16).unwrap_or_default();
        Self::with_session_id(address, rtp_port, id)
    }

    /// As [`Self::new`] with a given session id (deterministic output for tests).
    pub fn with_session_id(address: IpAddr, rtp_port: u16, session_id: u64) -> Self {
        Self {
            address,
            rtp_port,
            session_id,
            version: session_id,
            last_media: None,
            last_body: None,
            name: "otp-gateway",
        }
    }

    /// The same session under another `s=` name (the sandbox trunk answers as itself).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The initial offer: `m=audio <port> RTP/AVP 0 8 101` with rtpmaps, `fmtp:101 0-16`,
    /// `ptime:20`, `sendrecv`, CRLF line ends.
    pub fn offer(&mut self) -> String {
        let te = TELEPHONE_EVENT_PT;
        let media = format!(
            "m=audio {port} RTP/AVP 0 8 {te}\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:{te} telephone-event/8000\r\n\
             a=fmtp:{te} 0-16\r\n\
             a=ptime:{PTIME_MS}\r\n\
             a=sendrecv\r\n",
            port = self.rtp_port
        );
        self.render(media)
    }

    /// Answers the offer of a re-INVITE (RFC 3264 §6, §8) without changing our media: same
    /// address and port, `current` codec kept when the offer still lists it, the offer's payload
    /// numbers, the mirrored direction. Returns the answer and the peer's (possibly moved) media.
    pub fn answer_reoffer(
        &mut self,
        offer: &str,
        current: Option<Codec>,
    ) -> Result<(String, RemoteMedia), SdpError> {
        let remote = remote_media(offer, current)?;
        let pt = remote.payload_type;
        let mut formats = pt.to_string();
        let mut attrs = format!("a=rtpmap:{pt} {}/8000\r\n", remote.codec.encoding_name());
        if let Some(te) = remote.telephone_event {
            formats.push_str(&format!(" {te}"));
            attrs.push_str(&format!(
                "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
            ));
        }
        let media = format!(
            "m=audio {port} RTP/AVP {formats}\r\n{attrs}a=ptime:{PTIME_MS}\r\na={dir}\r\n",
            port = self.rtp_port,
            dir = remote.direction.reversed().as_str()
        );
        Ok((self.render(media), remote))
    }

    /// The last SDP produced, unchanged: the offer for a 200 to a re-INVITE without SDP
    /// (RFC 3264 §8: an unchanged description keeps its version).
    pub fn current(&self) -> Option<&str> {
        self.last_body.as_deref()
    }

    /// Adds the session lines; bumps the `o=` version when the description changed (RFC 3264 §8).
    fn render(&mut self, media: String) -> String {
        let (addr_type, addr) = match self.address {
            IpAddr::V4(v4) => ("IP4", v4.to_string()),
            IpAddr::V6(v6) => ("IP6", v6.to_string()),
        };
        let rest = format!(
            "s={}\r\nc=IN {addr_type} {addr}\r\nt=0 0\r\n{media}",
            self.name
        );
        match &self.last_media {
            Some(last) if *last == rest => {}
            Some(_) => {
                self.version = self.version.wrapping_add(1);
                self.last_media = Some(rest.clone());
            }
            None => self.last_media = Some(rest.clone()),
        }
        let body = format!(
            "v=0\r\no=- {} {} IN {addr_type} {addr}\r\n{rest}",
            self.session_id, self.version
        );
        self.last_body = Some(body.clone());
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn offer_is_exactly_pcmu_pcma_and_telephone_event() {
        let mut s = SdpSession::with_session_id(ip("203.0.113.25"), 10002, 3_900_000_000);
        let offer = s.offer();
        assert_eq!(
            offer,
            "v=0\r\n\
             o=- 3900000000 3900000000 IN IP4 203.0.113.25\r\n\
             s=otp-gateway\r\n\
             c=IN IP4 203.0.113.25\r\n\
             t=0 0\r\n\
             m=audio 10002 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
        assert_eq!(s.current(), Some(offer.as_str()));
        // Re-offering the same media keeps the version (RFC 3264 §8).
        assert_eq!(s.offer(), offer);

        let mut v6 = SdpSession::with_session_id(ip("2001:db8::25"), 10004, 7);
        let offer = v6.offer();
        assert!(offer.contains("o=- 7 7 IN IP6 2001:db8::25\r\n"));
        assert!(offer.contains("c=IN IP6 2001:db8::25\r\n"));
        // Our own offer reads back as a description of PCMU first.
        let m = parse_answer(&offer).unwrap();
        assert_eq!((m.codec, m.payload_type, m.port), (Codec::Pcmu, 0, 10004));
        assert!(SdpSession::new(ip("192.0.2.1"), 10000)
            .offer()
            .starts_with("v=0\r\no=- "));
    }

    #[test]
    fn asterisk_answer_with_pcma_only() {
        let answer = "v=0\r\n\
            o=root 1785 1785 IN IP4 46.19.213.90\r\n\
            s=Asterisk PBX 18.20.0\r\n\
            c=IN IP4 46.19.213.90\r\n\
            t=0 0\r\n\
            m=audio 17326 RTP/AVP 8 101\r\n\
            a=rtpmap:8 PCMA/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\n\
            a=fmtp:101 0-16\r\n\
            a=ptime:20\r\n\
            a=maxptime:150\r\n\
            a=sendrecv\r\n";
        let m = parse_answer(answer).unwrap();
        assert_eq!(
            m,
            RemoteMedia {
                address: ip("46.19.213.90"),
                port: 17326,
                codec: Codec::Pcma,
                payload_type: 8,
                telephone_event: Some(101),
                ptime_ms: Some(20),
                direction: Direction::SendRecv,
            }
        );
        assert_eq!(m.rtp_destination(), "46.19.213.90:17326".parse().unwrap());
    }

    #[test]
    fn freeswitch_answer_and_answer_order_is_honoured() {
        let fs = "v=0\n\
            o=FreeSWITCH 1700000000 1700000001 IN IP4 46.19.212.54\n\
            s=FreeSWITCH\n\
            c=IN IP4 46.19.212.54\n\
            t=0 0\n\
            m=audio 24580 RTP/AVP 0 101\n\
            a=rtpmap:0 PCMU/8000\n\
            a=rtpmap:101 telephone-event/8000\n\
            a=fmtp:101 0-16\n\
            a=ptime:20\n\
            a=rtcp:24581 IN IP4 46.19.212.54\n";
        let m = parse_answer(fs).unwrap();
        assert_eq!((m.codec, m.payload_type), (Codec::Pcmu, 0));
        assert_eq!(m.direction, Direction::SendRecv);

        // A DIDWW-style answer listing G.729 first, then PCMA before PCMU: PCMA wins.
        let didww = "v=0\r\n\
            o=- 8791 8791 IN IP4 46.19.209.44\r\n\
            s=-\r\n\
            c=IN IP4 46.19.210.19\r\n\
            t=0 0\r\n\
            m=audio 30244 RTP/AVP 18 8 0 101\r\n\
            a=rtpmap:18 G729/8000\r\n\
            a=fmtp:18 annexb=no\r\n\
            a=rtpmap:8 pcma/8000\r\n\
            a=rtpmap:0 PCMU/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\n";
        let m = parse_answer(didww).unwrap();
        assert_eq!((m.codec, m.payload_type), (Codec::Pcma, 8));
        assert_eq!(m.ptime_ms, None);
        assert_eq!(m.address, ip("46.19.210.19"));
    }

    #[test]
    fn static_types_without_rtpmap_and_dynamic_events() {
        let body = "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 4000 RTP/AVP 0 8 96\r\n\
                    a=rtpmap:96 telephone-event/8000\r\n";
        let m = parse_answer(body).unwrap();
        assert_eq!((m.codec, m.payload_type), (Codec::Pcmu, 0));
        assert_eq!(m.telephone_event, Some(96));

        // PCMU under a dynamic number: sent with the peer's number.
        let body =
            "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMU/8000\r\n";
        let m = parse_answer(body).unwrap();
        assert_eq!((m.codec, m.payload_type), (Codec::Pcmu, 97));
        assert_eq!(m.telephone_event, None);

        // Telephone-event at the wrong clock rate is not ours.
        let body = "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 4000 RTP/AVP 8 101\r\n\
                    a=rtpmap:101 telephone-event/48000\r\n";
        assert_eq!(parse_answer(body).unwrap().telephone_event, None);
    }

    #[test]
    fn ipv6_and_media_level_connection_and_direction_override() {
        let body = "v=0\r\n\
            o=- 1 1 IN IP6 2a01:ad00:4:2::54\r\n\
            s=-\r\n\
            c=IN IP6 2a01:ad00:4:2::54\r\n\
            t=0 0\r\n\
            a=sendonly\r\n\
            a=ptime:30\r\n\
            m=video 5000 RTP/AVP 96\r\n\
            c=IN IP4 10.9.9.9\r\n\
            m=audio 16500 RTP/AVP 8\r\n\
            c=IN IP4 224.2.1.1/127\r\n\
            a=recvonly\r\n";
        let m = parse_answer(body).unwrap();
        assert_eq!(m.address, ip("224.2.1.1"));
        assert_eq!(m.port, 16500);
        assert_eq!(m.direction, Direction::RecvOnly);
        assert_eq!(m.ptime_ms, Some(30));

        let session_only = "v=0\r\nc=IN IP6 2a01:ad00:4:2::54\r\nt=0 0\r\na=inactive\r\n\
                            m=audio 16500 RTP/AVP 0\r\n";
        let m = parse_answer(session_only).unwrap();
        assert_eq!(m.address, ip("2a01:ad00:4:2::54"));
        assert_eq!(m.direction, Direction::Inactive);
        assert!(!m.direction.author_receives());
    }

    #[test]
    fn unusable_answers_are_errors() {
        let cases: &[(&str, SdpError)] = &[
            (
                "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 0 RTP/AVP 0\r\n",
                SdpError::AudioRejected,
            ),
            (
                "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 4000 RTP/AVP 18 101\r\n\
                 a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
                SdpError::NoCommonCodec,
            ),
            (
                "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 G722/8000\r\n",
                SdpError::NoCommonCodec,
            ),
            ("v=0\r\nc=IN IP4 192.0.2.9\r\n", SdpError::NoAudio),
            (
                "v=0\r\nc=IN IP4 192.0.2.9\r\nm=video 4000 RTP/AVP 96\r\n",
                SdpError::NoAudio,
            ),
            ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", SdpError::NoConnection),
            (
                "v=0\r\nc=IN IP4 media.example.com\r\nm=audio 4000 RTP/AVP 0\r\n",
                SdpError::UnsupportedAddress("media.example.com".into()),
            ),
            (
                "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 4000 RTP/SAVP 0\r\n",
                SdpError::UnsupportedTransport("RTP/SAVP".into()),
            ),
            ("", SdpError::Malformed("does not start with v=0")),
            (
                "hello world",
                SdpError::Malformed("does not start with v=0"),
            ),
            (
                "v=0\r\nthis is not sdp\r\n",
                SdpError::Malformed("line is not <type>=<value>"),
            ),
            (
                "v=0\r\nm=audio x RTP/AVP 0\r\n",
                SdpError::Malformed("m= port is not a number"),
            ),
            (
                "v=0\r\nc=IN\r\nm=audio 4000 RTP/AVP 0\r\n",
                SdpError::Malformed("c= line needs nettype, addrtype and address"),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(parse_answer(body).as_ref(), Err(expected), "{body:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let sample = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4/5/6\r\nt=0 0\r\n\
                      m=audio 4000/2 RTP/AVP 0 8 101 300 x\r\na=rtpmap:101 telephone-event/8000\r\n\
                      a=rtpmap:\r\na=rtpmap:999 PCMU/8000\r\na=ptime:\r\na=ptime:0\r\na=\r\n";
        // The odd lines are ignored, the usable rest still yields PCMU.
        assert_eq!(parse_answer(sample).unwrap().codec, Codec::Pcmu);
        for end in 0..sample.len() {
            let _ = parse_answer(&sample[..end]);
        }
        for junk in [
            "\0",
            "v=0\r\n=\r\n",
            "v=0\r\nm=\r\n",
            "v=0\r\nm=audio\r\n",
            "\u{feff}v=0",
        ] {
            assert!(parse_answer(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn reinvite_offer_is_answered_without_changing_media() {
        let mut s = SdpSession::with_session_id(ip("203.0.113.25"), 10002, 100);
        let _ = s.offer();
        // The peer re-offers PCMU and PCMA from a new address; we keep PCMA, in use.
        let reoffer = "v=0\r\no=- 8791 8792 IN IP4 46.19.209.44\r\ns=-\r\nc=IN IP4 46.19.212.60\r\n\
                       t=0 0\r\nm=audio 30300 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
                       a=sendrecv\r\n";
        let (answer, remote) = s.answer_reoffer(reoffer, Some(Codec::Pcma)).unwrap();
        assert_eq!(
            answer,
            "v=0\r\n\
             o=- 100 101 IN IP4 203.0.113.25\r\n\
             s=otp-gateway\r\n\
             c=IN IP4 203.0.113.25\r\n\
             t=0 0\r\n\
             m=audio 10002 RTP/AVP 8 101\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
        assert_eq!(remote.codec, Codec::Pcma);
        assert_eq!(
            remote.rtp_destination(),
            "46.19.212.60:30300".parse().unwrap()
        );

        // The same re-offer again (a session refresh) gives the same answer and version.
        let (again, _) = s.answer_reoffer(reoffer, Some(Codec::Pcma)).unwrap();
        assert_eq!(again, answer);
        assert_eq!(s.current(), Some(answer.as_str()));

        // A hold (sendonly) is answered recvonly; the version moves on.
        let hold = reoffer.replace("a=sendrecv", "a=sendonly");
        let (held, remote) = s.answer_reoffer(&hold, Some(Codec::Pcma)).unwrap();
        assert!(held.contains("o=- 100 102 IN IP4"));
        assert!(held.ends_with("a=recvonly\r\n"));
        assert_eq!(remote.direction, Direction::SendOnly);

        // A re-offer without our codec falls back to what it lists; without any, an error.
        let pcmu_only = reoffer.replace("0 8 101", "0");
        let (answer, remote) = s.answer_reoffer(&pcmu_only, Some(Codec::Pcma)).unwrap();
        assert_eq!(remote.codec, Codec::Pcmu);
        assert!(answer.contains("m=audio 10002 RTP/AVP 0\r\n"));
        assert_eq!(
            s.answer_reoffer(&reoffer.replace("0 8 101", "18"), None),
            Err(SdpError::NoCommonCodec)
        );
    }
}
