//! `SipTransport`: the one UDP socket on `SIP_PORT` (DESIGN.md).
//!
//! It parses every datagram and routes it: responses to the client transaction that sent the
//! request (by the top Via branch, RFC 3261 §17.1.3), falling back to the dialog (by Call-ID) for
//! a 2xx retransmitted after its transaction ended; requests to their dialog by Call-ID. It answers
//! what belongs to no call itself: out-of-dialog OPTIONS with 200, requests for unknown dialogs
//! with 481, inbound calls with 603 (the gateway only calls out). Malformed datagrams are logged
//! and dropped.
//!
//! It also keeps the trunk's health: an OPTIONS every keepalive interval (reference §4.9); any
//! response proves the path works (a 403 or 405 still comes from the trunk), a transaction timeout
//! marks it unreachable. `/health` reads the result through [`SipHealth`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, StreamHandler,
    WrapFuture,
};
use tokio::net::UdpSocket;

use super::message::{self, Endpoint, HostPort, Incoming, Method, Request};
use super::timers::TransactionTimers;
use super::transaction::{Action, NonInviteClientTransaction, Reason, TimerConfig};

/// Largest datagram read (SIP over UDP should stay under the path MTU, RFC 3261 §18.1.1; anything
/// up to 64 KiB is read whole so it can be rejected whole).
const MAX_DATAGRAM: usize = 65_535;

/// At most one warning about malformed datagrams per this interval (the rest go to `debug`), so a
/// flood cannot fill the log.
const MALFORMED_WARN_EVERY: Duration = Duration::from_secs(10);

/// A SIP message for a call, with the address it came from.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SipInbound {
    /// The parsed message.
    pub message: Incoming,
    /// Where it came from (responses to in-dialog requests from it go back there).
    pub source: SocketAddr,
}

/// Sends `bytes` to `to` from the SIP socket.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// A serialized SIP message.
    pub bytes: Vec<u8>,
}

/// What routes a message to a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteKey {
    /// Responses to the client transaction with this branch.
    Branch(String),
    /// Requests in (and late responses for) the dialog with this Call-ID.
    CallId(String),
}

/// Routes messages matching `key` to `to` until unbound.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Bind {
    /// What to route.
    pub key: RouteKey,
    /// The call.
    pub to: Recipient<SipInbound>,
}

/// Stops routing these keys.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Unbind(pub Vec<RouteKey>);

/// The trunk's current address (resolved from `DIDWW_SIP_HOST`), if resolution worked.
#[derive(Message, Debug)]
#[rtype(result = "Option<SocketAddr>")]
pub struct TrunkAddress;

/// What the keepalive last found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkState {
    /// No keepalive finished yet (just started).
    Checking = 0,
    /// The trunk answered the last OPTIONS.
    Reachable = 1,
    /// The last OPTIONS got no answer, or the host did not resolve.
    Unreachable = 2,
}

impl TrunkState {
    /// The `/health` word.
    pub fn as_str(self) -> &'static str {
        match self {
            TrunkState::Checking => "checking",
            TrunkState::Reachable => "reachable",
            TrunkState::Unreachable => "unreachable",
        }
    }
}

/// The trunk state, shared with `/health`.
#[derive(Debug, Clone, Default)]
pub struct SipHealth(Arc<AtomicU8>);

impl SipHealth {
    /// The latest state.
    pub fn state(&self) -> TrunkState {
        match self.0.load(Ordering::Relaxed) {
            1 => TrunkState::Reachable,
            2 => TrunkState::Unreachable,
            _ => TrunkState::Checking,
        }
    }

    fn set(&self, state: TrunkState) {
        self.0.store(state as u8, Ordering::Relaxed);
    }
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Trunk and local addressing (for the keepalive OPTIONS and our responses' Server header).
    pub endpoint: Endpoint,
    /// User part of the keepalive's From and Contact (the caller ID).
    pub keepalive_user: String,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Time between keepalive OPTIONS.
    pub keepalive_interval: Duration,
}

/// One keepalive OPTIONS in flight.
struct Keepalive {
    branch: String,
    transaction: NonInviteClientTransaction,
    timers: TransactionTimers,
}

/// The SIP socket actor.
pub struct SipTransport {
    pending_socket: Option<std::net::UdpSocket>,
    socket: Option<Rc<UdpSocket>>,
    settings: TransportSettings,
    health: SipHealth,
    trunk: Option<SocketAddr>,
    branches: HashMap<String, Recipient<SipInbound>>,
    dialogs: HashMap<String, Recipient<SipInbound>>,
    keepalive: Option<Keepalive>,
    keepalive_call_id: String,
    keepalive_cseq: u32,
    malformed: u64,
    last_malformed_warning: Option<Instant>,
}

impl SipTransport {
    /// An actor for an already bound socket (binding first lets start-up report a taken
    /// `SIP_PORT` by name).
    pub fn new(
        socket: std::net::UdpSocket,
        settings: TransportSettings,
        health: SipHealth,
    ) -> Self {
        Self {
            pending_socket: Some(socket),
            socket: None,
            settings,
            health,
            trunk: None,
            branches: HashMap::new(),
            dialogs: HashMap::new(),
            keepalive: None,
            keepalive_call_id: message::new_call_id(),
            keepalive_cseq: 0,
            malformed: 0,
            last_malformed_warning: None,
        }
    }

    fn send(&self, to: SocketAddr, bytes: &[u8]) {
        let Some(socket) = &self.socket else {
            return;
        };
        // UDP sends complete at once or fail; a full buffer (WouldBlock) is a lost datagram, which
        // the transaction layer's retransmissions exist for.
        if let Err(err) = socket.try_send_to(bytes, to) {
            tracing::debug!(%to, error = %err, "SIP datagram not sent");
        }
    }

    fn on_datagram(&mut self, bytes: &[u8], source: SocketAddr, ctx: &mut Context<Self>) {
        match message::parse_datagram(bytes) {
            Ok(Incoming::Response(response)) => self.route_response(response, source, ctx),
            Ok(Incoming::Request(request)) => self.route_request(request, source),
            // A bare CRLF keepalive (RFC 5626 §3.5.1) is not a broken message.
            Err(message::Error::Empty) => {}
            Err(err) => self.malformed(source, &err.to_string()),
        }
    }

    fn malformed(&mut self, source: SocketAddr, error: &str) {
        self.malformed += 1;
        let now = Instant::now();
        let due = self
            .last_malformed_warning
            .is_none_or(|last| now.duration_since(last) >= MALFORMED_WARN_EVERY);
        if due {
            self.last_malformed_warning = Some(now);
            tracing::warn!(%source, error, total = self.malformed, "malformed SIP datagram dropped");
        } else {
            tracing::debug!(%source, error, "malformed SIP datagram dropped");
        }
    }

    fn route_response(
        &mut self,
        response: message::Response,
        source: SocketAddr,
        ctx: &mut Context<Self>,
    ) {
        let branch = response.via_branch.clone().unwrap_or_default();
        if let Some(k) = self.keepalive.as_mut().filter(|k| k.branch == branch) {
            let actions = k.transaction.on_response(Instant::now(), response.status);
            self.keepalive_actions(actions, source, ctx);
            return;
        }
        let target = self
            .branches
            .get(&branch)
            .or_else(|| self.dialogs.get(&response.call_id));
        match target {
            Some(call) => call.do_send(SipInbound {
                message: Incoming::Response(response),
                source,
            }),
            None => {
                tracing::debug!(%source, status = response.status, "SIP response for no transaction dropped")
            }
        }
    }

    fn route_request(&mut self, request: Request, source: SocketAddr) {
        if let Some(call) = self.dialogs.get(&request.call_id) {
            call.do_send(SipInbound {
                message: Incoming::Request(request),
                source,
            });
            return;
        }
        let server = self.settings.endpoint.user_agent.clone();
        let reply = match (&request.method, request.to_tag.is_some()) {
            (Method::Ack, _) => None,
            (Method::Options, false) => message::ok(&request, &server),
            (Method::Invite, false) => message::response(&request, 603, "Decline", &server),
            (Method::Invite | Method::Bye | Method::Cancel | Method::Options, _) => {
                message::call_does_not_exist(&request, &server)
            }
            _ if request.to_tag.is_some() => message::call_does_not_exist(&request, &server),
            _ => message::response(&request, 405, "Method Not Allowed", &server),
        };
        if let Some(bytes) = reply {
            // RFC 3261 §18.2.2 with RFC 3581: answer to the source address and port.
            self.send(source, &bytes);
        }
    }

    /// Resolves the trunk, then sends an OPTIONS.
    fn keepalive_tick(&mut self, ctx: &mut Context<Self>) {
        if self.keepalive.is_some() {
            return;
        }
        let destination = self.settings.endpoint.trunk_destination();
        let lookup = resolve(destination);
        ctx.spawn(lookup.into_actor(self).map(|resolved, act, ctx| {
            match resolved {
                Ok(addr) => {
                    act.trunk = Some(addr);
                    act.send_options(addr, ctx);
                }
                Err(err) => {
                    tracing::warn!(host = %act.settings.endpoint.trunk, error = %err, "SIP trunk host does not resolve");
                    act.health.set(TrunkState::Unreachable);
                }
            }
        }));
    }

    fn send_options(&mut self, to: SocketAddr, ctx: &mut Context<Self>) {
        self.keepalive_cseq = self.keepalive_cseq.wrapping_add(1).max(1);
        let branch = message::new_branch();
        let request = message::options(
            &self.settings.endpoint,
            &self.settings.keepalive_user,
            &self.keepalive_call_id,
            &message::new_tag(),
            self.keepalive_cseq,
            &branch,
        );
        let (transaction, actions) =
            NonInviteClientTransaction::start(request, self.settings.timers, Instant::now());
        self.keepalive = Some(Keepalive {
            branch,
            transaction,
            timers: TransactionTimers::default(),
        });
        self.keepalive_actions(actions, to, ctx);
    }

    fn keepalive_actions(&mut self, actions: Vec<Action>, to: SocketAddr, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::Send(bytes) => self.send(to, &bytes),
                Action::Schedule(kind, at) => {
                    if let Some(k) = self.keepalive.as_mut() {
                        k.timers
                            .schedule(ctx, kind, at, move |act: &mut Self, ctx| {
                                let Some(k) = act.keepalive.as_mut() else {
                                    return;
                                };
                                k.timers.fired(kind);
                                let actions = k.transaction.on_timer(Instant::now(), kind);
                                act.keepalive_actions(actions, to, ctx);
                            });
                    }
                }
                Action::Cancel(kind) => {
                    if let Some(k) = self.keepalive.as_mut() {
                        k.timers.cancel(ctx, kind);
                    }
                }
                Action::Deliver(status) if status >= 200 => {
                    if self.health.state() == TrunkState::Unreachable {
                        tracing::info!(status, "SIP trunk reachable again");
                    }
                    self.health.set(TrunkState::Reachable);
                }
                Action::Terminated(reason) => {
                    if reason != Reason::Completed {
                        if self.health.state() != TrunkState::Unreachable {
                            tracing::warn!(trunk = %to, "SIP trunk did not answer OPTIONS");
                        }
                        self.health.set(TrunkState::Unreachable);
                    }
                    if let Some(mut k) = self.keepalive.take() {
                        k.timers.cancel_all(ctx);
                    }
                }
                Action::Deliver(_) | Action::SendAck => {}
            }
        }
    }
}

/// Resolves a host and port (IP literals without a lookup).
pub async fn resolve(target: HostPort) -> io::Result<SocketAddr> {
    let port = target.port.unwrap_or(5060);
    if let Ok(ip) = target.host.parse() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((target.host.as_str(), port))
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
}

impl Actor for SipTransport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let socket = self
            .pending_socket
            .take()
            .and_then(|s| s.set_nonblocking(true).map(|()| s).ok())
            .and_then(|s| UdpSocket::from_std(s).ok());
        let Some(socket) = socket else {
            tracing::error!("SIP socket could not be registered; voice calls are unavailable");
            self.health.set(TrunkState::Unreachable);
            return;
        };
        let socket = Rc::new(socket);
        self.socket = Some(Rc::clone(&socket));
        let datagrams = futures_util::stream::unfold(socket, |socket| async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((len, source)) => {
                        buf.truncate(len);
                        return Some(((buf, source), socket));
                    }
                    // ICMP errors from earlier sends surface here on some systems; they concern
                    // a datagram already lost, not the socket.
                    Err(err) => tracing::debug!(error = %err, "SIP receive error"),
                }
            }
        });
        ctx.add_stream(datagrams);
        self.keepalive_tick(ctx);
        let every = self.settings.keepalive_interval;
        ctx.run_interval(every, |act, ctx| act.keepalive_tick(ctx));
    }
}

impl StreamHandler<(Vec<u8>, SocketAddr)> for SipTransport {
    fn handle(&mut self, (bytes, source): (Vec<u8>, SocketAddr), ctx: &mut Context<Self>) {
        self.on_datagram(&bytes, source, ctx);
    }
}

impl Handler<Transmit> for SipTransport {
    type Result = ();

    fn handle(&mut self, msg: Transmit, _: &mut Context<Self>) {
        self.send(msg.to, &msg.bytes);
    }
}

impl Handler<Bind> for SipTransport {
    type Result = ();

    fn handle(&mut self, msg: Bind, _: &mut Context<Self>) {
        match msg.key {
            RouteKey::Branch(branch) => self.branches.insert(branch, msg.to),
            RouteKey::CallId(call_id) => self.dialogs.insert(call_id, msg.to),
        };
    }
}

impl Handler<Unbind> for SipTransport {
    type Result = ();

    fn handle(&mut self, msg: Unbind, _: &mut Context<Self>) {
        for key in msg.0 {
            match key {
                RouteKey::Branch(branch) => self.branches.remove(&branch),
                RouteKey::CallId(call_id) => self.dialogs.remove(&call_id),
            };
        }
    }
}

impl Handler<TrunkAddress> for SipTransport {
    type Result = Option<SocketAddr>;

    fn handle(&mut self, _: TrunkAddress, _: &mut Context<Self>) -> Option<SocketAddr> {
        self.trunk
    }
}
