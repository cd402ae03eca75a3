//! RFC 3261 §17.1 client transactions as sans-IO state machines with explicit time.
//!
//! Two machines, both driven by the caller (the future `SipTransport`/`CallActor`):
//!
//! - [`InviteClientTransaction`]: RFC 3261 §17.1.1, Figure 5, as updated by RFC 6026 §7.2 (the
//!   "Accepted" state that keeps handing retransmitted or forked 2xx responses up until Timer M).
//! - [`NonInviteClientTransaction`]: RFC 3261 §17.1.2, Figure 6, for BYE, CANCEL and OPTIONS.
//!
//! Neither machine does I/O, reads a clock, parses SIP or depends on an async runtime. The caller
//! feeds inputs — the start of the transaction, the status code of each response that matched it
//! (§17.1.3 matching is the caller's job), timer firings and transport errors — each with the
//! current [`Instant`], and carries out the returned [`Action`]s in order: send bytes, send an ACK,
//! pass a response up, arm or disarm a timer, forget the transaction. The request is an opaque
//! byte buffer that the machine retransmits as given.
//!
//! Timers follow RFC 3261 §17 and Table 4 in Appendix A (plus Timer M from RFC 6026 §8.4), for an
//! unreliable transport (UDP, the only one the gateway uses, SPEC §7): A and E retransmit, B and F
//! time out, D and K absorb retransmitted final responses, M absorbs retransmitted 2xx. All of them
//! come from [`TimerConfig`], so tests can shrink T1 to milliseconds.
//!
//! Contract for the driver:
//! - [`Action::Schedule`] is only ever emitted for a timer that is not armed, so one handle per
//!   [`TimerKind`] is enough; [`Action::Cancel`] names a timer that is armed.
//! - A firing of a timer that is not armed (cancelled, already fired, or stale after a state
//!   change) is ignored, so a driver that loses a cancellation race does no harm. The machine does
//!   not compare `now` with the deadline: any clock works (e.g. tokio's paused clock in tests) as
//!   long as each timer is fired once, at or after its deadline.
//! - Every input in a state where RFC 3261 gives it no transition returns no actions. Nothing here
//!   panics.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use actors::sip::transaction::{Action, InviteClientTransaction, TimerConfig, TimerKind};
//!
//! let t0 = Instant::now();
//! let config = TimerConfig::from_t1(Duration::from_millis(10));
//! let (mut invite, actions) = InviteClientTransaction::start(b"INVITE ...".to_vec(), config, t0);
//! assert_eq!(actions[0], Action::Send(b"INVITE ...".to_vec()));
//! // Timer A fired: the INVITE goes out again and Timer A is re-armed at twice the interval.
//! let actions = invite.on_timer(t0 + Duration::from_millis(10), TimerKind::A);
//! assert_eq!(actions.len(), 2);
//! // The callee answers: the 200 goes up to the dialog layer, which sends the ACK itself.
//! let actions = invite.on_response(t0 + Duration::from_millis(15), 200);
//! assert!(actions.contains(&Action::Deliver(200)));
//! ```

use std::time::{Duration, Instant};

/// RFC 3261 §17.1.1.1 (Table 4): T1, the round-trip time estimate, 500 ms by default.
pub const DEFAULT_T1: Duration = Duration::from_millis(500);

/// RFC 3261 §17.1.2.2 (Table 4): T2, the maximum retransmission interval for non-INVITE
/// requests, 4 s.
pub const DEFAULT_T2: Duration = Duration::from_secs(4);

/// RFC 3261 §17.1.2.2 (Table 4): T4, the maximum time a message stays in the network, 5 s.
pub const DEFAULT_T4: Duration = Duration::from_secs(5);

/// How long, in multiples of T1, Timers B, F and M and the §9.1 CANCEL wait run: 64·T1.
const T1_MULTIPLE_TIMEOUT: u32 = 64;

/// Timer values for both client transactions, RFC 3261 §17 and Table 4 in Appendix A.
///
/// Timers A and E are not listed: they start at [`t1`](Self::t1) and back off from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// T1, RTT estimate: initial interval of Timers A and E (§17.1.1.1). Default 500 ms.
    pub t1: Duration,
    /// T2, the cap on the Timer E interval, and its period in "Proceeding" (§17.1.2.2). Default 4 s.
    pub t2: Duration,
    /// T4, the maximum lifetime of a message in the network (§17.1.2.2). Default 5 s.
    pub t4: Duration,
    /// Timer B, INVITE transaction timeout in "Calling" (§17.1.1.2). Default 64·T1 = 32 s.
    pub timer_b: Duration,
    /// Timer D, wait for retransmitted non-2xx finals to INVITE (§17.1.1.2). At least 32 s for
    /// UDP; default 32 s.
    pub timer_d: Duration,
    /// Timer F, non-INVITE transaction timeout (§17.1.2.2). Default 64·T1 = 32 s.
    pub timer_f: Duration,
    /// Timer K, wait for retransmitted non-INVITE finals (§17.1.2.2). T4 for UDP; default 5 s.
    pub timer_k: Duration,
    /// Timer M, wait for retransmitted or forked 2xx to INVITE (RFC 6026 §7.2). Default 64·T1.
    pub timer_m: Duration,
}

impl TimerConfig {
    /// Every timer derived from `t1` with the RFC 3261 ratios of the defaults: T2 = 8·T1,
    /// T4 = 10·T1, B = D = F = M = 64·T1, K = T4. `from_t1(DEFAULT_T1)` equals
    /// [`TimerConfig::default`].
    ///
    /// Meant for short test timers and for a larger T1 on high-latency paths (§17.1.1.1). With a
    /// T1 below 500 ms Timer D falls under the 32 s minimum of §17.1.1.2; production code that
    /// lowers T1 should set [`timer_d`](Self::timer_d) back to 32 s.
    pub fn from_t1(t1: Duration) -> Self {
        let timeout = t1.saturating_mul(T1_MULTIPLE_TIMEOUT);
        let t4 = t1.saturating_mul(10);
        Self {
            t1,
            t2: t1.saturating_mul(8),
            t4,
            timer_b: timeout,
            timer_d: timeout,
            timer_f: timeout,
            timer_k: t4,
            timer_m: timeout,
        }
    }

    /// §9.1: how long an INVITE transaction waits for its final response after the CANCEL went
    /// out (64·T1).
    fn cancel_wait(&self) -> Duration {
        self.t1.saturating_mul(T1_MULTIPLE_TIMEOUT)
    }
}

impl Default for TimerConfig {
    /// The RFC 3261 Table 4 values for UDP: T1 500 ms, T2 4 s, T4 5 s, B = F = M = 32 s, D = 32 s,
    /// K = 5 s.
    fn default() -> Self {
        Self::from_t1(DEFAULT_T1)
    }
}

/// The timers a client transaction asks its driver to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// INVITE retransmission in "Calling": T1, then doubling without a cap (§17.1.1.2).
    A,
    /// INVITE timeout in "Calling": 64·T1 (§17.1.1.2).
    B,
    /// Absorbs retransmitted non-2xx finals in "Completed" (§17.1.1.2).
    D,
    /// Non-INVITE retransmission: T1 doubling up to T2 in "Trying", every T2 in "Proceeding"
    /// (§17.1.2.2).
    E,
    /// Non-INVITE timeout: 64·T1 (§17.1.2.2).
    F,
    /// Absorbs retransmitted non-INVITE finals in "Completed": T4 (§17.1.2.2).
    K,
    /// Absorbs retransmitted and forked 2xx in "Accepted": 64·T1 (RFC 6026 §7.2).
    M,
    /// Not an RFC timer name: the 64·T1 wait for the INVITE's final response after a CANCEL was
    /// sent (§9.1), armed by [`InviteClientTransaction::on_cancel_sent`].
    CancelGuard,
}

impl TimerKind {
    /// Every kind, in the order of the bookkeeping slots.
    const ALL: [TimerKind; 8] = [
        TimerKind::A,
        TimerKind::B,
        TimerKind::D,
        TimerKind::E,
        TimerKind::F,
        TimerKind::K,
        TimerKind::M,
        TimerKind::CancelGuard,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// Why a transaction reached "Terminated"; reported once, as the last action it ever emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No final response in time: Timer B in "Calling", Timer F, or the §9.1 wait after CANCEL.
    /// The TU treats it like a 408 (§8.1.3.1); no `Deliver` precedes it.
    Timeout,
    /// The transport reported a fatal error for this transaction (§17.1.1.2, §17.1.2.2).
    TransportError,
    /// Normal end: Timer D or K after a final response, or Timer M after a 2xx.
    Completed,
}

/// What the driver must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass these request bytes to the transport: the first transmission or a retransmission.
    Send(Vec<u8>),
    /// Send the ACK for the 300–699 response just fed to
    /// [`InviteClientTransaction::on_response`] (§17.1.1.3).
    ///
    /// The machine never sees headers, so the driver builds the ACK from the INVITE and that
    /// response: Request-URI, Call-ID, From, top Via (same branch) and Route of the INVITE, the
    /// To header of the response (with its tag), CSeq with the INVITE's number and method ACK.
    /// Retransmitted finals carry the same To tag, so the driver may cache the first ACK and resend
    /// it. ACKs to 2xx are never requested here: they belong to the dialog layer (§13.2.2.4).
    SendAck,
    /// Pass the response with this status code up to the TU.
    Deliver(u16),
    /// Arm the timer to fire at the given instant.
    Schedule(TimerKind, Instant),
    /// Disarm the timer; a late firing would be ignored anyway.
    Cancel(TimerKind),
    /// The transaction is over: stop routing responses to it and drop it (§17.1.1.2).
    Terminated(Reason),
}

/// States of the INVITE client transaction: RFC 3261 Figure 5 plus "Accepted" (RFC 6026 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteState {
    /// INVITE sent, Timer A retransmitting, Timer B running.
    Calling,
    /// A provisional arrived: no more retransmissions and no timeout; the TU ends ringing with
    /// CANCEL.
    Proceeding,
    /// A 300–699 arrived and was ACKed; retransmissions of it are re-ACKed until Timer D.
    Completed,
    /// A 2xx arrived; further 2xx are passed up for the TU to ACK until Timer M.
    Accepted,
    /// Done; every input is ignored.
    Terminated,
}

/// States of the non-INVITE client transaction, RFC 3261 Figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteState {
    /// Request sent, Timer E retransmitting with backoff, Timer F running.
    Trying,
    /// A provisional arrived: Timer E keeps retransmitting every T2, Timer F still running.
    Proceeding,
    /// A final response arrived; retransmissions of it are absorbed until Timer K.
    Completed,
    /// Done; every input is ignored.
    Terminated,
}

/// Class of a response status code (§7.2); `None` for codes outside 100–699, which are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Provisional,
    Success,
    Failure,
}

fn classify(status: u16) -> Option<Class> {
    match status {
        100..=199 => Some(Class::Provisional),
        200..=299 => Some(Class::Success),
        300..=699 => Some(Class::Failure),
        _ => None,
    }
}

/// `now + after` without the overflow panic of `Instant + Duration`: an absurdly long timer is
/// clamped to a century, which never fires in the life of a call.
fn deadline(now: Instant, after: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(after)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// Which timers are armed, with their deadlines; keeps `Schedule`/`Cancel` actions consistent.
#[derive(Debug, Clone, Default)]
struct Armed([Option<Instant>; TimerKind::ALL.len()]);

impl Armed {
    fn slot(&mut self, kind: TimerKind) -> Option<&mut Option<Instant>> {
        self.0.get_mut(kind.slot())
    }

    fn is_armed(&self, kind: TimerKind) -> bool {
        matches!(self.0.get(kind.slot()), Some(Some(_)))
    }

    fn schedule(&mut self, out: &mut Vec<Action>, kind: TimerKind, at: Instant) {
        if let Some(slot) = self.slot(kind) {
            *slot = Some(at);
            out.push(Action::Schedule(kind, at));
        }
    }

    fn cancel(&mut self, out: &mut Vec<Action>, kind: TimerKind) {
        if self.slot(kind).and_then(Option::take).is_some() {
            out.push(Action::Cancel(kind));
        }
    }

    fn cancel_all(&mut self, out: &mut Vec<Action>) {
        for kind in TimerKind::ALL {
            self.cancel(out, kind);
        }
    }

    /// Disarms `kind`; true if it was armed, i.e. the firing is genuine.
    fn fire(&mut self, kind: TimerKind) -> bool {
        self.slot(kind).and_then(Option::take).is_some()
    }
}

/// The INVITE client transaction of RFC 3261 §17.1.1 (Figure 5) with the "Accepted" state of
/// RFC 6026 §7.2, for an unreliable transport.
///
/// Calling → (1xx) Proceeding → (300–699) Completed → (Timer D) Terminated, or → (2xx) Accepted →
/// (Timer M) Terminated; Timer B or a transport error in Calling ends it with a failure.
#[derive(Debug, Clone)]
pub struct InviteClientTransaction {
    config: TimerConfig,
    request: Vec<u8>,
    state: InviteState,
    /// The interval Timer A was last armed with; doubles on each firing (§17.1.1.2).
    timer_a_interval: Duration,
    armed: Armed,
}

impl InviteClientTransaction {
    /// Starts the transaction at `now` ("INVITE from TU" in Figure 5): the INVITE is sent, Timer A
    /// armed at T1 and Timer B at [`TimerConfig::timer_b`]. The machine keeps `request` (the
    /// serialized INVITE) for retransmissions.
    ///
    /// Starting is the constructor, so no transaction exists before its request has gone out.
    pub fn start(request: Vec<u8>, config: TimerConfig, now: Instant) -> (Self, Vec<Action>) {
        let mut tx = Self {
            config,
            request,
            state: InviteState::Calling,
            timer_a_interval: config.t1,
            armed: Armed::default(),
        };
        let mut out = vec![Action::Send(tx.request.clone())];
        tx.armed
            .schedule(&mut out, TimerKind::A, deadline(now, config.t1));
        tx.armed
            .schedule(&mut out, TimerKind::B, deadline(now, config.timer_b));
        (tx, out)
    }

    /// The current state.
    pub fn state(&self) -> InviteState {
        self.state
    }

    /// True once the transaction is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == InviteState::Terminated
    }

    /// The INVITE bytes as given to [`start`](Self::start), for building the ACK or CANCEL.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// True in "Proceeding", the only state in which a CANCEL may be sent (§9.1: not before a
    /// provisional response, pointless after a final one).
    pub fn can_cancel(&self) -> bool {
        self.state == InviteState::Proceeding
    }

    /// A response matching this transaction (§17.1.3) arrived with `status`.
    ///
    /// - 1xx in Calling/Proceeding: passed up; Timers A and B stop (no retransmission and no
    ///   timeout once the callee is reached, §17.1.1.2).
    /// - 2xx in Calling/Proceeding: passed up, "Accepted", Timer M (RFC 6026 §7.2). No ACK here.
    /// - 300–699 in Calling/Proceeding: ACK, passed up, "Completed", Timer D (§17.1.1.2).
    /// - 300–699 in Completed: the ACK is sent again, nothing is passed up.
    /// - 2xx in Accepted: passed up again so the dialog layer re-ACKs it (or ACKs and BYEs a
    ///   forked answer, §13.2.2.4).
    /// - Anything else, and codes outside 100–699, are ignored.
    pub fn on_response(&mut self, now: Instant, status: u16) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(class) = classify(status) else {
            return out;
        };
        match (self.state, class) {
            (InviteState::Calling | InviteState::Proceeding, Class::Provisional) => {
                self.armed.cancel(&mut out, TimerKind::A);
                self.armed.cancel(&mut out, TimerKind::B);
                self.state = InviteState::Proceeding;
                out.push(Action::Deliver(status));
            }
            (InviteState::Calling | InviteState::Proceeding, Class::Success) => {
                self.armed.cancel_all(&mut out);
                self.state = InviteState::Accepted;
                out.push(Action::Deliver(status));
                self.armed
                    .schedule(&mut out, TimerKind::M, deadline(now, self.config.timer_m));
            }
            (InviteState::Calling | InviteState::Proceeding, Class::Failure) => {
                self.armed.cancel_all(&mut out);
                self.state = InviteState::Completed;
                out.push(Action::SendAck);
                out.push(Action::Deliver(status));
                self.armed
                    .schedule(&mut out, TimerKind::D, deadline(now, self.config.timer_d));
            }
            (InviteState::Completed, Class::Failure) => out.push(Action::SendAck),
            (InviteState::Accepted, Class::Success) => out.push(Action::Deliver(status)),
            _ => {}
        }
        out
    }

    /// The driver's timer `kind` fired at `now`. Ignored unless that timer is armed.
    ///
    /// - A: the INVITE is retransmitted and Timer A re-armed at twice its last interval.
    /// - B (only armed in Calling), or the CANCEL guard: `Terminated(Timeout)`.
    /// - D, M: `Terminated(Completed)`.
    pub fn on_timer(&mut self, now: Instant, kind: TimerKind) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.armed.fire(kind) {
            return out;
        }
        match kind {
            TimerKind::A => {
                out.push(Action::Send(self.request.clone()));
                self.timer_a_interval = self.timer_a_interval.saturating_mul(2);
                self.armed
                    .schedule(&mut out, TimerKind::A, deadline(now, self.timer_a_interval));
            }
            TimerKind::B | TimerKind::CancelGuard => self.terminate(&mut out, Reason::Timeout),
            TimerKind::D | TimerKind::M => self.terminate(&mut out, Reason::Completed),
            TimerKind::E | TimerKind::F | TimerKind::K => {}
        }
        out
    }

    /// The transport failed to send this transaction's INVITE or ACK (e.g. ICMP unreachable).
    ///
    /// Figure 5 has this transition from Calling and Completed only: the transaction sends nothing
    /// in Proceeding, and in Accepted the ACK is the dialog layer's, so there it is ignored.
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.state, InviteState::Calling | InviteState::Completed) {
            self.terminate(&mut out, Reason::TransportError);
        }
        out
    }

    /// The TU sent a CANCEL for this INVITE at `now`; arms [`TimerKind::CancelGuard`] so that,
    /// if no final response arrives within 64·T1, the transaction ends with `Timeout` (§9.1).
    ///
    /// Ignored outside Proceeding (see [`can_cancel`](Self::can_cancel)) and when already armed.
    pub fn on_cancel_sent(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == InviteState::Proceeding && !self.armed.is_armed(TimerKind::CancelGuard) {
            self.armed.schedule(
                &mut out,
                TimerKind::CancelGuard,
                deadline(now, self.config.cancel_wait()),
            );
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: Reason) {
        self.armed.cancel_all(out);
        self.state = InviteState::Terminated;
        out.push(Action::Terminated(reason));
    }
}

/// The non-INVITE client transaction of RFC 3261 §17.1.2 (Figure 6) for BYE, CANCEL and OPTIONS,
/// over an unreliable transport.
///
/// Trying → (1xx) Proceeding → (200–699) Completed → (Timer K) Terminated; Timer F or a transport
/// error in Trying/Proceeding ends it with a failure. No ACK exists for non-INVITE requests.
#[derive(Debug, Clone)]
pub struct NonInviteClientTransaction {
    config: TimerConfig,
    request: Vec<u8>,
    state: NonInviteState,
    /// The interval Timer E was last armed with (§17.1.2.2).
    timer_e_interval: Duration,
    armed: Armed,
}

impl NonInviteClientTransaction {
    /// Starts the transaction at `now` ("Request from TU" in Figure 6): the request is sent,
    /// Timer E armed at T1 and Timer F at [`TimerConfig::timer_f`]. The machine keeps `request`
    /// for retransmissions.
    pub fn start(request: Vec<u8>, config: TimerConfig, now: Instant) -> (Self, Vec<Action>) {
        let mut tx = Self {
            config,
            request,
            state: NonInviteState::Trying,
            timer_e_interval: config.t1,
            armed: Armed::default(),
        };
        let mut out = vec![Action::Send(tx.request.clone())];
        tx.armed
            .schedule(&mut out, TimerKind::E, deadline(now, config.t1));
        tx.armed
            .schedule(&mut out, TimerKind::F, deadline(now, config.timer_f));
        (tx, out)
    }

    /// The current state.
    pub fn state(&self) -> NonInviteState {
        self.state
    }

    /// True once the transaction is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }

    /// The request bytes as given to [`start`](Self::start).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// A response matching this transaction (§17.1.3) arrived with `status`.
    ///
    /// - 1xx in Trying/Proceeding: passed up, "Proceeding" (Timer E keeps running, at T2).
    /// - 200–699 in Trying/Proceeding: passed up, Timers E and F stop, "Completed", Timer K.
    /// - Anything in Completed (retransmitted finals) is absorbed; codes outside 100–699 ignored.
    pub fn on_response(&mut self, now: Instant, status: u16) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(class) = classify(status) else {
            return out;
        };
        match (self.state, class) {
            (NonInviteState::Trying | NonInviteState::Proceeding, Class::Provisional) => {
                self.state = NonInviteState::Proceeding;
                out.push(Action::Deliver(status));
            }
            (
                NonInviteState::Trying | NonInviteState::Proceeding,
                Class::Success | Class::Failure,
            ) => {
                self.armed.cancel_all(&mut out);
                self.state = NonInviteState::Completed;
                out.push(Action::Deliver(status));
                self.armed
                    .schedule(&mut out, TimerKind::K, deadline(now, self.config.timer_k));
            }
            _ => {}
        }
        out
    }

    /// The driver's timer `kind` fired at `now`. Ignored unless that timer is armed.
    ///
    /// - E: the request is retransmitted; Timer E re-armed at min(2·interval, T2) in Trying, at
    ///   T2 in Proceeding.
    /// - F: `Terminated(Timeout)`.
    /// - K: `Terminated(Completed)`.
    pub fn on_timer(&mut self, now: Instant, kind: TimerKind) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.armed.fire(kind) {
            return out;
        }
        match kind {
            TimerKind::E => {
                out.push(Action::Send(self.request.clone()));
                self.timer_e_interval = if self.state == NonInviteState::Trying {
                    self.timer_e_interval.saturating_mul(2).min(self.config.t2)
                } else {
                    self.config.t2
                };
                self.armed
                    .schedule(&mut out, TimerKind::E, deadline(now, self.timer_e_interval));
            }
            TimerKind::F => self.terminate(&mut out, Reason::Timeout),
            TimerKind::K => self.terminate(&mut out, Reason::Completed),
            TimerKind::A | TimerKind::B | TimerKind::D | TimerKind::M | TimerKind::CancelGuard => {}
        }
        out
    }

    /// The transport failed to send this request. Figure 6 has this transition from Trying and
    /// Proceeding (where retransmissions still go out); in Completed it is ignored.
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(
            self.state,
            NonInviteState::Trying | NonInviteState::Proceeding
        ) {
            self.terminate(&mut out, Reason::TransportError);
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: Reason) {
        self.armed.cancel_all(out);
        self.state = NonInviteState::Terminated;
        out.push(Action::Terminated(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: Duration = Duration::from_millis(10);
    const INVITE: &[u8] = b"INVITE sip:+15550100@sip.example SIP/2.0\r\n\r\n";
    const BYE: &[u8] = b"BYE sip:+15550100@sip.example SIP/2.0\r\n\r\n";

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Both machines, as the fake driver sees them.
    trait Machine {
        fn on_timer(&mut self, now: Instant, kind: TimerKind) -> Vec<Action>;
    }

    impl Machine for InviteClientTransaction {
        fn on_timer(&mut self, now: Instant, kind: TimerKind) -> Vec<Action> {
            InviteClientTransaction::on_timer(self, now, kind)
        }
    }

    impl Machine for NonInviteClientTransaction {
        fn on_timer(&mut self, now: Instant, kind: TimerKind) -> Vec<Action> {
            NonInviteClientTransaction::on_timer(self, now, kind)
        }
    }

    /// A fake driver on a fake clock: runs the timers the machine schedules, fires them in
    /// deadline order, records every action with its offset from `t0`, and checks the contract
    /// (Schedule only for an idle timer, Cancel only for an armed one, nothing after Terminated).
    struct Driver {
        t0: Instant,
        now: Instant,
        timers: Vec<(TimerKind, Instant)>,
        log: Vec<(Duration, Action)>,
        terminated: bool,
    }

    impl Driver {
        fn new() -> Self {
            let t0 = Instant::now();
            Self {
                t0,
                now: t0,
                timers: Vec::new(),
                log: Vec::new(),
                terminated: false,
            }
        }

        fn at(&self, offset: Duration) -> Instant {
            self.t0 + offset
        }

        fn apply(&mut self, actions: Vec<Action>) -> Vec<Action> {
            for action in &actions {
                assert!(!self.terminated, "action after Terminated: {action:?}");
                match action {
                    Action::Schedule(kind, at) => {
                        assert!(
                            self.timers.iter().all(|(k, _)| k != kind),
                            "{kind:?} scheduled while armed"
                        );
                        assert!(*at >= self.now, "{kind:?} scheduled in the past");
                        self.timers.push((*kind, *at));
                    }
                    Action::Cancel(kind) => {
                        let before = self.timers.len();
                        self.timers.retain(|(k, _)| k != kind);
                        assert_eq!(self.timers.len() + 1, before, "{kind:?} cancelled unarmed");
                    }
                    Action::Terminated(_) => self.terminated = true,
                    Action::Send(_) | Action::SendAck | Action::Deliver(_) => {}
                }
                self.log.push((self.now - self.t0, action.clone()));
            }
            actions
        }

        /// Moves the clock to `t0 + offset`, firing every timer due on the way, in order.
        fn advance<M: Machine>(&mut self, machine: &mut M, offset: Duration) {
            let until = self.at(offset);
            loop {
                let next = self
                    .timers
                    .iter()
                    .copied()
                    .filter(|(_, at)| *at <= until)
                    .min_by_key(|(_, at)| *at);
                let Some((kind, at)) = next else { break };
                self.timers.retain(|(k, _)| *k != kind);
                self.now = at;
                let actions = machine.on_timer(at, kind);
                self.apply(actions);
            }
            self.now = until;
        }

        fn armed(&self, kind: TimerKind) -> Option<Duration> {
            self.timers
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, at)| *at - self.t0)
        }

        /// Offsets of every `Send` in the log.
        fn sends(&self) -> Vec<Duration> {
            self.log
                .iter()
                .filter(|(_, a)| matches!(a, Action::Send(_)))
                .map(|(t, _)| *t)
                .collect()
        }

        fn count(&self, wanted: &Action) -> usize {
            self.log.iter().filter(|(_, a)| a == wanted).count()
        }

        /// Statuses passed up to the TU, in order.
        fn delivered(&self) -> Vec<u16> {
            self.log
                .iter()
                .filter_map(|(_, a)| match a {
                    Action::Deliver(status) => Some(*status),
                    _ => None,
                })
                .collect()
        }

        fn termination(&self) -> Option<Reason> {
            self.log.iter().find_map(|(_, a)| match a {
                Action::Terminated(reason) => Some(*reason),
                _ => None,
            })
        }
    }

    fn invite(d: &mut Driver) -> InviteClientTransaction {
        let (tx, actions) =
            InviteClientTransaction::start(INVITE.to_vec(), TimerConfig::from_t1(T1), d.now);
        d.apply(actions);
        tx
    }

    fn bye(d: &mut Driver) -> NonInviteClientTransaction {
        let (tx, actions) =
            NonInviteClientTransaction::start(BYE.to_vec(), TimerConfig::from_t1(T1), d.now);
        d.apply(actions);
        tx
    }

    #[test]
    fn default_config_is_the_rfc_table_for_udp() {
        let c = TimerConfig::default();
        assert_eq!(c.t1, ms(500));
        assert_eq!(c.t2, Duration::from_secs(4));
        assert_eq!(c.t4, Duration::from_secs(5));
        assert_eq!(c.timer_b, Duration::from_secs(32));
        assert_eq!(c.timer_d, Duration::from_secs(32));
        assert_eq!(c.timer_f, Duration::from_secs(32));
        assert_eq!(c.timer_k, Duration::from_secs(5));
        assert_eq!(c.timer_m, Duration::from_secs(32));
        assert_eq!(c, TimerConfig::from_t1(DEFAULT_T1));
    }

    #[test]
    fn from_t1_scales_every_timer() {
        let c = TimerConfig::from_t1(T1);
        assert_eq!((c.t2, c.t4), (ms(80), ms(100)));
        assert_eq!(
            (c.timer_b, c.timer_d, c.timer_f),
            (ms(640), ms(640), ms(640))
        );
        assert_eq!((c.timer_k, c.timer_m), (ms(100), ms(640)));
    }

    #[test]
    fn start_sends_the_invite_and_arms_timers_a_and_b() {
        let mut d = Driver::new();
        let tx = invite(&mut d);
        assert_eq!(
            d.log.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
            vec![
                Action::Send(INVITE.to_vec()),
                Action::Schedule(TimerKind::A, d.at(T1)),
                Action::Schedule(TimerKind::B, d.at(ms(640))),
            ]
        );
        assert_eq!(tx.state(), InviteState::Calling);
        assert_eq!(tx.request(), INVITE);
        assert!(!tx.can_cancel());
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b_times_out() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        d.advance(&mut tx, ms(639));
        // The original at 0, then retransmissions T1, 2·T1, 4·T1, … apart: 6 before 64·T1.
        assert_eq!(d.sends(), [0, 10, 30, 70, 150, 310, 630].map(ms).to_vec());
        // No cap at T2 (80 ms) for INVITE: the next interval is 640 ms.
        assert_eq!(d.armed(TimerKind::A), Some(ms(630 + 640)));
        assert!(d.termination().is_none());

        d.advance(&mut tx, ms(640));
        assert_eq!(d.termination(), Some(Reason::Timeout));
        assert!(d.delivered().is_empty(), "a timeout delivers nothing");
        assert_eq!(d.count(&Action::Cancel(TimerKind::A)), 1);
        assert!(d.timers.is_empty());
        assert!(tx.is_terminated());
        assert_eq!(d.sends().len(), 7);
    }

    #[test]
    fn timer_b_with_default_timers_fires_at_32_s_after_6_retransmissions() {
        let t0 = Instant::now();
        let (mut tx, _) =
            InviteClientTransaction::start(INVITE.to_vec(), TimerConfig::default(), t0);
        let mut sends = 0;
        let mut at = t0 + DEFAULT_T1;
        while at < t0 + Duration::from_secs(32) {
            let actions = tx.on_timer(at, TimerKind::A);
            sends += actions
                .iter()
                .filter(|a| matches!(a, Action::Send(_)))
                .count();
            at = actions
                .iter()
                .find_map(|a| match a {
                    Action::Schedule(TimerKind::A, next) => Some(*next),
                    _ => None,
                })
                .unwrap();
        }
        assert_eq!(sends, 6);
        assert_eq!(
            tx.on_timer(t0 + Duration::from_secs(32), TimerKind::B),
            vec![
                Action::Cancel(TimerKind::A),
                Action::Terminated(Reason::Timeout)
            ]
        );
    }

    #[test]
    fn provisional_stops_retransmissions_and_timer_b() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        d.advance(&mut tx, ms(25));
        let actions = d.apply(tx.on_response(d.now, 180));
        assert_eq!(
            actions,
            vec![
                Action::Cancel(TimerKind::A),
                Action::Cancel(TimerKind::B),
                Action::Deliver(180)
            ]
        );
        assert_eq!(tx.state(), InviteState::Proceeding);
        assert!(tx.can_cancel());
        // A stale firing of the cancelled timers is ignored.
        assert!(tx.on_timer(d.at(ms(30)), TimerKind::A).is_empty());
        assert!(tx.on_timer(d.at(ms(640)), TimerKind::B).is_empty());
        // Ringing has no transaction timeout: the TU ends it with CANCEL.
        d.advance(&mut tx, Duration::from_secs(60));
        assert_eq!(d.sends(), vec![ms(0), ms(10)]);
        assert!(d.termination().is_none());
        // More provisionals are passed up too.
        d.apply(tx.on_response(d.now, 183));
        assert_eq!(d.delivered(), vec![180, 183]);
    }

    #[test]
    fn busy_after_ringing_is_acked_and_retransmissions_are_reacked_until_timer_d() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        d.advance(&mut tx, ms(5));
        d.apply(tx.on_response(d.now, 180));
        d.advance(&mut tx, ms(100));
        let actions = d.apply(tx.on_response(d.now, 486));
        assert_eq!(
            actions,
            vec![
                Action::SendAck,
                Action::Deliver(486),
                Action::Schedule(TimerKind::D, d.at(ms(100 + 640))),
            ]
        );
        assert_eq!(tx.state(), InviteState::Completed);
        assert!(!tx.can_cancel());

        // The ACK got lost: the 486 comes again and is re-ACKed, not passed up.
        d.advance(&mut tx, ms(600));
        assert_eq!(d.apply(tx.on_response(d.now, 486)), vec![Action::SendAck]);
        // Stray provisionals and 2xx in Completed are ignored.
        assert!(tx.on_response(d.now, 180).is_empty());
        assert!(tx.on_response(d.now, 200).is_empty());

        d.advance(&mut tx, ms(740));
        assert_eq!(d.termination(), Some(Reason::Completed));
        assert_eq!(d.delivered(), vec![180, 486]);
        assert_eq!(d.count(&Action::SendAck), 2);
        assert!(
            tx.on_response(d.now, 486).is_empty(),
            "nothing after Terminated"
        );
    }

    #[test]
    fn final_failure_in_calling_stops_both_timers() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        d.advance(&mut tx, ms(15));
        let actions = d.apply(tx.on_response(d.now, 503));
        assert_eq!(
            actions[..4],
            [
                Action::Cancel(TimerKind::A),
                Action::Cancel(TimerKind::B),
                Action::SendAck,
                Action::Deliver(503),
            ]
        );
        assert_eq!(d.armed(TimerKind::D), Some(ms(15 + 640)));
        d.advance(&mut tx, ms(10_000));
        assert_eq!(d.sends(), vec![ms(0), ms(10)]);
        assert_eq!(d.termination(), Some(Reason::Completed));
    }

    #[test]
    fn answered_2xx_and_its_retransmissions_go_up_until_timer_m() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        d.advance(&mut tx, ms(5));
        d.apply(tx.on_response(d.now, 180));
        d.advance(&mut tx, ms(50));
        let actions = d.apply(tx.on_response(d.now, 200));
        assert_eq!(
            actions,
            vec![
                Action::Deliver(200),
                Action::Schedule(TimerKind::M, d.at(ms(50 + 640)))
            ]
        );
        assert_eq!(tx.state(), InviteState::Accepted);
        assert_eq!(d.count(&Action::SendAck), 0, "the dialog layer ACKs a 2xx");

        // The UAS retransmits the 200 until it sees the ACK: each one goes up for a re-ACK.
        d.advance(&mut tx, ms(100));
        assert_eq!(
            d.apply(tx.on_response(d.now, 200)),
            vec![Action::Deliver(200)]
        );
        d.advance(&mut tx, ms(300));
        assert_eq!(
            d.apply(tx.on_response(d.now, 200)),
            vec![Action::Deliver(200)]
        );
        // Only 2xx belong in Accepted.
        assert!(tx.on_response(d.now, 183).is_empty());
        assert!(tx.on_response(d.now, 486).is_empty());
        assert!(tx.on_transport_error().is_empty());

        d.advance(&mut tx, ms(690));
        assert_eq!(d.termination(), Some(Reason::Completed));
        assert!(tx.on_response(d.now, 200).is_empty());
        assert_eq!(d.delivered(), vec![180, 200, 200, 200]);
        assert_eq!(d.sends(), vec![ms(0)]);
    }

    #[test]
    fn transport_error_terminates_in_calling_and_completed_only() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        d.advance(&mut tx, ms(12));
        let actions = d.apply(tx.on_transport_error());
        assert_eq!(
            actions,
            vec![
                Action::Cancel(TimerKind::A),
                Action::Cancel(TimerKind::B),
                Action::Terminated(Reason::TransportError)
            ]
        );
        assert!(tx.on_transport_error().is_empty());
        assert!(tx.on_timer(d.now, TimerKind::A).is_empty());

        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        d.apply(tx.on_response(d.now, 180));
        assert!(
            tx.on_transport_error().is_empty(),
            "nothing is sent in Proceeding"
        );
        d.apply(tx.on_response(d.now, 404));
        let actions = d.apply(tx.on_transport_error());
        assert_eq!(
            actions,
            vec![
                Action::Cancel(TimerKind::D),
                Action::Terminated(Reason::TransportError)
            ]
        );
    }

    #[test]
    fn cancel_guard_ends_a_ringing_invite_whose_487_never_comes() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        assert!(
            tx.on_cancel_sent(d.now).is_empty(),
            "no CANCEL before a provisional"
        );
        d.advance(&mut tx, ms(20));
        d.apply(tx.on_response(d.now, 180));
        d.advance(&mut tx, ms(1_000));
        let actions = d.apply(tx.on_cancel_sent(d.now));
        assert_eq!(
            actions,
            vec![Action::Schedule(TimerKind::CancelGuard, d.at(ms(1_640)))]
        );
        assert!(tx.on_cancel_sent(d.now).is_empty(), "armed once");
        d.advance(&mut tx, ms(1_640));
        assert_eq!(d.termination(), Some(Reason::Timeout));
    }

    #[test]
    fn cancel_guard_is_disarmed_by_the_487() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        d.apply(tx.on_response(d.now, 180));
        d.apply(tx.on_cancel_sent(d.now));
        d.advance(&mut tx, ms(30));
        let actions = d.apply(tx.on_response(d.now, 487));
        assert_eq!(
            actions[..3],
            [
                Action::Cancel(TimerKind::CancelGuard),
                Action::SendAck,
                Action::Deliver(487)
            ]
        );
        d.advance(&mut tx, ms(10_000));
        assert_eq!(d.termination(), Some(Reason::Completed));
    }

    #[test]
    fn invite_ignores_foreign_timers_and_invalid_codes() {
        let mut d = Driver::new();
        let mut tx = invite(&mut d);
        for kind in [
            TimerKind::D,
            TimerKind::E,
            TimerKind::F,
            TimerKind::K,
            TimerKind::M,
            TimerKind::CancelGuard,
        ] {
            assert!(tx.on_timer(d.at(ms(5)), kind).is_empty(), "{kind:?}");
        }
        for status in [0, 99, 700, 999, u16::MAX] {
            assert!(tx.on_response(d.now, status).is_empty(), "{status}");
        }
        assert_eq!(tx.state(), InviteState::Calling);
    }

    #[test]
    fn bye_timer_e_doubles_up_to_t2_then_timer_f_times_out() {
        let mut d = Driver::new();
        let mut tx = bye(&mut d);
        assert_eq!(d.armed(TimerKind::E), Some(T1));
        assert_eq!(d.armed(TimerKind::F), Some(ms(640)));
        d.advance(&mut tx, ms(639));
        // Intervals 10, 20, 40, then capped at T2 = 80 ms.
        assert_eq!(
            d.sends(),
            [0, 10, 30, 70, 150, 230, 310, 390, 470, 550, 630]
                .map(ms)
                .to_vec()
        );
        d.advance(&mut tx, ms(640));
        assert_eq!(d.termination(), Some(Reason::Timeout));
        assert!(d.delivered().is_empty());
        assert!(d.timers.is_empty());
        assert!(tx.is_terminated());
    }

    #[test]
    fn bye_in_proceeding_retransmits_every_t2() {
        let mut d = Driver::new();
        let mut tx = bye(&mut d);
        d.advance(&mut tx, ms(15));
        assert_eq!(
            d.apply(tx.on_response(d.now, 100)),
            vec![Action::Deliver(100)]
        );
        assert_eq!(tx.state(), NonInviteState::Proceeding);
        // Timer E keeps its current deadline (30 ms), then runs every T2.
        d.advance(&mut tx, ms(300));
        assert_eq!(d.sends(), [0, 10, 30, 110, 190, 270].map(ms).to_vec());
        d.advance(&mut tx, ms(640));
        assert_eq!(d.termination(), Some(Reason::Timeout));
    }

    #[test]
    fn bye_final_is_delivered_once_and_retransmissions_absorbed_until_timer_k() {
        let mut d = Driver::new();
        let mut tx = bye(&mut d);
        d.advance(&mut tx, ms(12));
        let actions = d.apply(tx.on_response(d.now, 200));
        assert_eq!(
            actions,
            vec![
                Action::Cancel(TimerKind::E),
                Action::Cancel(TimerKind::F),
                Action::Deliver(200),
                Action::Schedule(TimerKind::K, d.at(ms(112))),
            ]
        );
        assert_eq!(tx.state(), NonInviteState::Completed);
        d.advance(&mut tx, ms(50));
        assert!(tx.on_response(d.now, 200).is_empty());
        assert!(tx.on_response(d.now, 100).is_empty());
        assert!(tx.on_transport_error().is_empty());
        d.advance(&mut tx, ms(112));
        assert_eq!(d.termination(), Some(Reason::Completed));
        assert_eq!(d.delivered(), vec![200]);
        assert_eq!(d.sends(), vec![ms(0), ms(10)]);
        assert!(tx.on_timer(d.now, TimerKind::E).is_empty());
    }

    #[test]
    fn cancel_answered_with_481_completes_like_any_final() {
        let mut d = Driver::new();
        let (mut tx, actions) = NonInviteClientTransaction::start(
            b"CANCEL sip:x SIP/2.0\r\n\r\n".to_vec(),
            TimerConfig::from_t1(T1),
            d.now,
        );
        d.apply(actions);
        d.apply(tx.on_response(d.now, 481));
        assert_eq!(d.delivered(), vec![481]);
        assert_eq!(tx.state(), NonInviteState::Completed);
    }

    #[test]
    fn bye_transport_error_terminates_in_trying_and_proceeding() {
        let mut d = Driver::new();
        let mut tx = bye(&mut d);
        assert_eq!(
            d.apply(tx.on_transport_error()),
            vec![
                Action::Cancel(TimerKind::E),
                Action::Cancel(TimerKind::F),
                Action::Terminated(Reason::TransportError)
            ]
        );

        let mut d = Driver::new();
        let mut tx = bye(&mut d);
        d.apply(tx.on_response(d.now, 100));
        d.apply(tx.on_transport_error());
        assert_eq!(d.termination(), Some(Reason::TransportError));
        assert!(tx.on_response(d.now, 200).is_empty());
    }

    #[test]
    fn non_invite_ignores_foreign_timers_and_invalid_codes() {
        let mut d = Driver::new();
        let mut tx = bye(&mut d);
        for kind in [
            TimerKind::A,
            TimerKind::B,
            TimerKind::D,
            TimerKind::K,
            TimerKind::M,
            TimerKind::CancelGuard,
        ] {
            assert!(tx.on_timer(d.at(ms(5)), kind).is_empty(), "{kind:?}");
        }
        for status in [0, 42, 700, u16::MAX] {
            assert!(tx.on_response(d.now, status).is_empty(), "{status}");
        }
        assert_eq!(tx.state(), NonInviteState::Trying);
    }

    #[test]
    fn huge_timers_do_not_overflow() {
        let t0 = Instant::now();
        let config = TimerConfig::from_t1(Duration::MAX);
        assert_eq!(config.timer_b, Duration::MAX);
        let (mut tx, actions) = InviteClientTransaction::start(INVITE.to_vec(), config, t0);
        assert_eq!(actions.len(), 3);
        assert_eq!(tx.on_timer(t0, TimerKind::A).len(), 2);
        let (mut tx, _) = NonInviteClientTransaction::start(BYE.to_vec(), config, t0);
        assert_eq!(tx.on_timer(t0, TimerKind::E).len(), 2);
    }
}
