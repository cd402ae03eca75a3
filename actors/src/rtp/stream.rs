//! The RTP sending loop of a call and the thread it runs on.
//!
//! [`MediaEngine`] owns one OS thread with its own single-threaded Tokio runtime, used only for
//! media: a call's 20 ms pacing must not wait behind database writes, HTTP requests or other
//! actors' handlers, so it never shares a thread with them. Each call gets one task
//! ([`MediaEngine::play`]) that sends frame `n` of its [`PromptPlan`] at `start + n × 20 ms` on the
//! monotonic clock (deadlines are computed from the start, never from the previous wake-up, so
//! lateness never accumulates into drift), and reads what the peer sends on the same socket.
//!
//! Symmetric RTP (RFC 4961, "comedia"): the SDP answer gives the first destination; once a valid
//! RTP packet arrives, the stream latches onto its source address and sends there for the rest of
//! the call (the peer may sit behind NAT, or a media relay may answer from another port). It
//! latches once: a later packet from elsewhere cannot redirect the call's audio (RTP hijacking).
//!
//! Streams are spread over the 20 ms cycle: a new stream starts in the millisecond slot of the
//! cycle that has the fewest streams (at most 19 ms later). Calls answered in one burst would
//! otherwise send their packets in the same timer tick, back to back, for their whole life.
//!
//! The call owns a [`PlaybackHandle`]; dropping it stops the stream at once.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::g711::Codec;
use super::packetizer::{Packetizer, PACKET_INTERVAL, RTP_HEADER_LEN};
use super::prompt::PromptPlan;

/// Largest datagram read from the peer (RTP with G.711 at 20 ms is 172 bytes; anything up to a
/// jumbo frame is read and dropped without error).
const RECEIVE_BUFFER: usize = 2048;

/// What a playing stream reports to its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaybackEvent {
    /// The first packet carrying code audio was sent (`playing`).
    Playing,
    /// The packet completing the code's first full reading was sent (`otp_played`).
    OtpPlayed,
    /// The stream latched onto the peer's actual RTP source (symmetric RTP).
    Latched(SocketAddr),
    /// Every frame was sent.
    Finished(PlaybackStats),
    /// The socket failed; the stream stopped.
    Failed(String),
}

/// Sending statistics of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaybackStats {
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets received from the peer.
    pub packets_received: u64,
    /// The latest a packet went out after its deadline.
    pub max_lateness: Duration,
}

/// One call's stream: where to send, in which codec, what to play.
pub struct Playback {
    /// The call's RTP socket (a duplicate of the port lease's descriptor).
    pub socket: std::net::UdpSocket,
    /// Destination from the SDP answer.
    pub remote: SocketAddr,
    /// Negotiated codec.
    pub codec: Codec,
    /// The frames to send.
    pub plan: PromptPlan,
}

/// Stops the stream when dropped.
#[derive(Debug)]
pub struct PlaybackHandle {
    task: tokio::task::AbortHandle,
}

impl Drop for PlaybackHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The media thread. Cloning shares it; the thread ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct MediaEngine {
    runtime: tokio::runtime::Handle,
    phases: Arc<Phases>,
    _keep_alive: Arc<Shutdown>,
}

/// Millisecond slots of the 20 ms packet cycle.
const SLOTS: usize = 20;

/// How many live streams send in each millisecond slot of the cycle, measured from `epoch`.
#[derive(Debug)]
struct Phases {
    epoch: Instant,
    load: Mutex<[u32; SLOTS]>,
}

impl Phases {
    fn slot_of(&self, at: Instant) -> usize {
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        usize::try_from(ms % SLOTS as u128).unwrap_or(0)
    }

    /// Picks the start of a new stream: the least loaded slot at or after `now` (ties: the
    /// soonest), returned with a guard that frees the slot when the stream ends.
    fn reserve(self: &Arc<Self>, now: Instant) -> (Instant, PhaseGuard) {
        let current = self.slot_of(now);
        let mut load = self.load.lock().unwrap_or_else(PoisonError::into_inner);
        let (wait, slot) = (0..SLOTS)
            .map(|wait| (wait, (current + wait) % SLOTS))
            .min_by_key(|(wait, slot)| (load[*slot], *wait))
            .unwrap_or((0, current));
        load[slot] += 1;
        let start = now + Duration::from_millis(wait as u64);
        (
            start,
            PhaseGuard {
                phases: Arc::clone(self),
                slot,
            },
        )
    }
}

/// Frees a stream's slot when it ends, however it ends.
struct PhaseGuard {
    phases: Arc<Phases>,
    slot: usize,
}

impl Drop for PhaseGuard {
    fn drop(&mut self) {
        let mut load = self
            .phases
            .load
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        load[self.slot] = load[self.slot].saturating_sub(1);
    }
}

/// Ends the media thread's runtime when the last engine clone goes.
#[derive(Debug)]
struct Shutdown(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Shutdown {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl MediaEngine {
    /// Starts the media thread.
    pub fn start() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("otp-media".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(Self {
            runtime: handle,
            phases: Arc::new(Phases {
                epoch: Instant::now(),
                load: Mutex::new([0; SLOTS]),
            }),
            _keep_alive: Arc::new(Shutdown(Some(stop))),
        })
    }

    /// Starts sending `playback`; events arrive on the returned receiver, the last one being
    /// [`PlaybackEvent::Finished`] or [`PlaybackEvent::Failed`] unless the handle is dropped first.
    pub fn play(
        &self,
        playback: Playback,
    ) -> (PlaybackHandle, mpsc::UnboundedReceiver<PlaybackEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let (start, slot) = self.phases.reserve(Instant::now());
        let task = self.runtime.spawn(async move {
            let _slot = slot;
            let failed = events.clone();
            if let Err(err) = run(playback, start, events).await {
                let _ = failed.send(PlaybackEvent::Failed(err.to_string()));
            }
        });
        (
            PlaybackHandle {
                task: task.abort_handle(),
            },
            receiver,
        )
    }
}

/// The pacing loop: one packet per deadline, reading the peer in between.
async fn run(
    playback: Playback,
    start: Instant,
    events: mpsc::UnboundedSender<PlaybackEvent>,
) -> io::Result<()> {
    let Playback {
        socket,
        mut remote,
        codec,
        plan,
    } = playback;
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket)?;
    let mut packetizer = Packetizer::random(codec).map_err(|e| io::Error::other(e.to_string()))?;
    let mut latched = false;
    let mut stats = PlaybackStats::default();
    let mut buffer = [0u8; RECEIVE_BUFFER];

    // One timer for the whole stream, re-armed per frame: a fresh `Sleep` per loop pass would
    // register and remove a timer-wheel entry for every packet the peer sends.
    let sleep = tokio::time::sleep_until(start);
    tokio::pin!(sleep);
    for frame in plan {
        let deadline = start + PACKET_INTERVAL * u32::try_from(frame.index).unwrap_or(u32::MAX);
        sleep.as_mut().reset(deadline);
        loop {
            tokio::select! {
                biased;
                () = &mut sleep => break,
                received = socket.recv_from(&mut buffer) => {
                    // A read error (an ICMP port unreachable surfacing as ECONNREFUSED) says
                    // nothing about our ability to send: keep pacing.
                    let Ok((len, source)) = received else { continue };
                    if !looks_like_rtp(&buffer[..len]) {
                        continue;
                    }
                    stats.packets_received += 1;
                    if !latched {
                        latched = true;
                        if source != remote {
                            remote = source;
                            let _ = events.send(PlaybackEvent::Latched(source));
                        }
                    }
                }
            }
        }
        let packet = packetizer
            .packetize(&frame.samples)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let lateness = Instant::now().saturating_duration_since(deadline);
        stats.max_lateness = stats.max_lateness.max(lateness);
        match socket.send_to(&packet, remote).await {
            Ok(_) => stats.packets_sent += 1,
            // The peer's port is not there (yet): UDP says so on a later call; the stream goes on,
            // as a phone line would, rather than hanging up on a transient ICMP.
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(err) => return Err(err),
        }
        if frame.starts_code {
            let _ = events.send(PlaybackEvent::Playing);
        }
        if frame.completes_code {
            let _ = events.send(PlaybackEvent::OtpPlayed);
        }
    }
    let _ = events.send(PlaybackEvent::Finished(stats));
    Ok(())
}

/// RTP version 2 with at least a fixed header (RFC 3550 §5.1); RTCP on the same port (payload
/// types 200–204 with the marker bit folded in) is not media and does not latch.
fn looks_like_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= RTP_HEADER_LEN
        && datagram[0] >> 6 == 2
        && !(200..=204).contains(&(datagram[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::prompt::{Clips, DigitGap, PromptPart};
    use std::net::{Ipv4Addr, UdpSocket as StdSocket};
    use std::sync::Arc;

    fn clips() -> Clips {
        let mut clips = Clips::new();
        for name in crate::rtp::prompt::CLIP_NAMES {
            clips.insert(name, Arc::from(vec![1000i16; 160]));
        }
        clips
    }

    fn plan(code: &str) -> PromptPlan {
        PromptPlan::build(
            &[PromptPart::Code],
            code,
            &clips(),
            DigitGap::from_millis(0),
        )
        .unwrap()
    }

    fn pair() -> (StdSocket, StdSocket) {
        let a = StdSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let b = StdSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        (a, b)
    }

    async fn collect(mut rx: mpsc::UnboundedReceiver<PlaybackEvent>) -> Vec<PlaybackEvent> {
        let mut out = Vec::new();
        while let Some(event) = rx.recv().await {
            let last = matches!(event, PlaybackEvent::Finished(_) | PlaybackEvent::Failed(_));
            out.push(event);
            if last {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn sends_every_frame_in_order_and_reports_progress() {
        let engine = MediaEngine::start().unwrap();
        let (ours, peer) = pair();
        let remote = peer.local_addr().unwrap();
        let plan = plan("12");
        let frames = plan.frame_count();
        let (_handle, rx) = engine.play(Playback {
            socket: ours,
            remote,
            codec: Codec::Pcmu,
            plan,
        });
        let events = collect(rx).await;
        assert_eq!(events[0], PlaybackEvent::Playing);
        assert_eq!(events[1], PlaybackEvent::OtpPlayed);
        let PlaybackEvent::Finished(stats) = events[2] else {
            panic!("{events:?}")
        };
        assert_eq!(stats.packets_sent, frames as u64);
        let mut buf = [0u8; 512];
        let mut last_seq = None;
        for i in 0..frames {
            let (len, _) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(len, 172);
            assert_eq!(buf[0] >> 6, 2);
            assert_eq!(
                buf[1] & 0x80 != 0,
                i == 0,
                "marker only on the first packet"
            );
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            if let Some(prev) = last_seq {
                assert_eq!(seq, u16::wrapping_add(prev, 1));
            }
            last_seq = Some(seq);
        }
    }

    #[tokio::test]
    async fn latches_onto_the_peer_source_once() {
        let engine = MediaEngine::start().unwrap();
        let (ours, advertised) = pair();
        let ours_addr = ours.local_addr().unwrap();
        let actual = StdSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let intruder = StdSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        // Plenty of frames so the stream is still running when the peer speaks.
        let (_handle, mut rx) = engine.play(Playback {
            socket: ours,
            remote: advertised.local_addr().unwrap(),
            codec: Codec::Pcma,
            plan: plan("1234567890"),
        });
        let mut rtp = [0u8; 172];
        rtp[0] = 0x80;
        rtp[1] = 8;
        actual.send_to(&rtp, ours_addr).unwrap();
        assert_eq!(
            rx.recv().await,
            Some(PlaybackEvent::Latched(actual.local_addr().unwrap()))
        );
        intruder.send_to(&rtp, ours_addr).unwrap();
        let mut buf = [0u8; 512];
        actual
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for _ in 0..5 {
            let (len, from) = actual.recv_from(&mut buf).unwrap();
            assert_eq!((len, from), (172, ours_addr));
            assert_eq!(buf[1] & 0x7f, 8, "PCMA payload type");
        }
        intruder.set_nonblocking(true).unwrap();
        let events = collect(rx).await;
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, PlaybackEvent::Latched(_))),
            "latched a second time: {events:?}"
        );
        assert!(
            intruder.recv_from(&mut buf).is_err(),
            "the intruder must not receive audio"
        );
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_stream() {
        let engine = MediaEngine::start().unwrap();
        let (ours, peer) = pair();
        let (handle, mut rx) = engine.play(Playback {
            socket: ours,
            remote: peer.local_addr().unwrap(),
            codec: Codec::Pcmu,
            plan: plan("1234567890"),
        });
        let mut buf = [0u8; 512];
        peer.recv_from(&mut buf).unwrap();
        drop(handle);
        // The task is gone: its sender is dropped without a Finished event.
        while let Some(event) = rx.recv().await {
            assert!(
                !matches!(event, PlaybackEvent::Finished(_)),
                "a stopped stream must not finish"
            );
        }
    }

    #[test]
    fn streams_spread_over_the_cycle_and_free_their_slot() {
        let phases = Arc::new(Phases {
            epoch: Instant::now(),
            load: Mutex::new([0; SLOTS]),
        });
        let now = phases.epoch;
        let guards: Vec<_> = (0..SLOTS).map(|_| phases.reserve(now)).collect();
        let mut starts: Vec<u128> = guards
            .iter()
            .map(|(start, _)| start.duration_since(now).as_millis())
            .collect();
        starts.sort_unstable();
        assert_eq!(
            starts,
            (0..SLOTS as u128).collect::<Vec<_>>(),
            "one stream per slot"
        );
        // Every slot holds one; the next goes to the current millisecond again.
        let (start, _extra) = phases.reserve(now);
        assert_eq!(start, now);
        drop(guards);
        let load = phases.load.lock().unwrap();
        assert_eq!(
            load.iter().sum::<u32>(),
            1,
            "ended streams free their slots"
        );
    }

    #[test]
    fn rtcp_and_short_datagrams_are_not_rtp() {
        assert!(!looks_like_rtp(&[0x80; 4]));
        assert!(!looks_like_rtp(&[0x80, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!looks_like_rtp(&[0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(looks_like_rtp(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(looks_like_rtp(&[0x80, 0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    }
}
