//! Why the SIP parser in [`message`](super::message) is our own rather than rsip's (DECISIONS.md,
//! "SIP parsing"): messages RFC 3261 allows, which a trunk or a proxy in its path may send, that
//! rsip 0.4 rejects or misreads. Each case is checked both ways: our parser reads it, rsip does
//! not. When an rsip release fixes a case its test fails, telling us to look at rsip again.

#[cfg(test)]
mod tests {
    use crate::sip::message::{parse_datagram, Incoming, Method};

    /// Headers every message below shares.
    const HEADERS: &str = "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK-1\r\n\
From: <sip:15550100000@192.0.2.10>;tag=a1\r\n\
To: <sip:14155552671@out.didww.com>;tag=b2\r\n\
Call-ID: c3@192.0.2.10\r\n";

    fn rsip_reads(text: &str) -> Option<rsip::SipMessage> {
        rsip::SipMessage::try_from(text).ok()
    }

    fn ours(text: &str) -> Incoming {
        parse_datagram(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn response(text: &str) -> crate::sip::message::Response {
        match ours(text) {
            Incoming::Response(r) => r,
            Incoming::Request(r) => panic!("not a response: {r:?}"),
        }
    }

    #[test]
    fn a_status_line_without_reason_phrase_is_read() {
        // RFC 3261 §25.1 allows an empty Reason-Phrase; some devices also drop the space before it
        // (be liberal in what you accept: the code is what matters).
        let text = format!("SIP/2.0 180\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(response(&text).status, 180);
        assert!(rsip_reads(&text).is_none());
    }

    #[test]
    fn the_reason_phrase_is_kept_as_sent() {
        // Events report the carrier's reason; rsip replaces it with its own table's text.
        let text = format!(
            "SIP/2.0 480 Nobody Home\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(response(&text).reason, "Nobody Home");
        let rsip = rsip_reads(&text).map(|m| m.to_string()).unwrap_or_default();
        assert!(!rsip.contains("Nobody Home"), "{rsip}");
    }

    #[test]
    fn an_ipv6_request_uri_is_read() {
        // DIDWW signals over IPv6 too (reference §4.3): its BYE may target [v6]:port.
        let text = format!(
            "BYE sip:[2001:db8::1]:5060 SIP/2.0\r\n{HEADERS}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(matches!(ours(&text), Incoming::Request(r) if r.method == Method::Bye));
        assert!(rsip_reads(&text).is_none());
    }

    #[test]
    fn extension_methods_are_read_so_they_can_be_answered() {
        // §8.2.1: an unsupported method gets 405 — which needs the request parsed first.
        let text = format!(
            "FOO sip:15550100000@192.0.2.10 SIP/2.0\r\n{HEADERS}CSeq: 3 FOO\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(
            matches!(ours(&text), Incoming::Request(r) if r.method == Method::Other("FOO".into()))
        );
        assert!(rsip_reads(&text).is_none());
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
        assert!(rsip_reads(folded).is_none());
    }

    #[test]
    fn leading_crlf_keepalives_are_skipped() {
        // §7.5: implementations should ignore CRLFs before the start line (RFC 5626 keepalives).
        let text = format!(
            "\r\n\r\nSIP/2.0 100 Trying\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(response(&text).status, 100);
        assert!(rsip_reads(&text).is_none());
    }

    #[test]
    fn the_body_ends_at_content_length() {
        // §18.3: bytes past Content-Length in a datagram are not part of the message.
        let text = format!(
            "SIP/2.0 200 OK\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 3\r\n\r\nv=0JUNK"
        );
        assert_eq!(response(&text).body, b"v=0");
        let rsip_body = rsip_reads(&text)
            .map(|m| m.body().clone())
            .unwrap_or_default();
        assert_eq!(rsip_body, b"v=0JUNK");
    }
}
