//! The trunk's RTP side of an answered call: one UDP socket on loopback (two with
//! `rtp_from_other_port`), a task per socket recording every packet that arrives, and a task
//! sending 20 ms G.711 silence to the gateway's SDP address, as a phone network's media gateway
//! does.
//!
//! Everything runs on the trunk's own thread; arrival times are taken right after `recv_from`
//! returns, so a benchmark measuring the gateway's pacing sees no scheduling noise of the gateway's
//! runtime.

use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::Instant;

use actors::rtp::g711::Codec;
use actors::rtp::packetizer::{Packetizer, PACKET_INTERVAL};
use rtp_rs::RtpReader;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::records::{RtpRecord, Store};
use super::wire::Loss;

/// The sockets of one call, bound synchronously so that the SDP answer can name the port.
#[derive(Debug)]
pub(super) struct MediaSockets {
    /// The advertised socket (the port in the SDP answer).
    pub advertised: StdUdpSocket,
    /// The socket the trunk sends from with `rtp_from_other_port`.
    pub other: Option<StdUdpSocket>,
}

impl MediaSockets {
    /// Binds one socket (two with `other_port`) on `ip`, ephemeral ports, non-blocking.
    pub(super) fn bind(ip: IpAddr, other_port: bool) -> std::io::Result<Self> {
        let open = || -> std::io::Result<StdUdpSocket> {
            let socket = StdUdpSocket::bind(SocketAddr::new(ip, 0))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        };
        Ok(Self {
            advertised: open()?,
            other: if other_port { Some(open()?) } else { None },
        })
    }

    /// Local ports: the advertised one, then the other.
    pub(super) fn ports(&self) -> Vec<u16> {
        [Some(&self.advertised), self.other.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| s.local_addr().ok().map(|a| a.port()))
            .collect()
    }
}

/// Everything the media tasks of a call need.
#[derive(Debug)]
pub(super) struct MediaPlan {
    pub call_id: String,
    pub sockets: MediaSockets,
    /// Where the silence goes; `None` sends nothing.
    pub target: Option<SocketAddr>,
    pub codec: Codec,
    pub loss_share: f64,
    pub record_audio: bool,
}

/// Stops a call's media: the sender at once; the receivers after reading what is already queued
/// on their sockets (the gateway's last packets leave just before its BYE, and a BYE handled
/// first must not make them look lost).
#[derive(Debug, Default)]
pub(super) struct MediaHandles {
    senders: Vec<AbortHandle>,
    receivers: Vec<Arc<Notify>>,
}

impl MediaHandles {
    pub(super) fn stop(self) {
        for sender in self.senders {
            sender.abort();
        }
        for receiver in self.receivers {
            receiver.notify_one();
        }
    }
}

/// Starts the call's receive tasks and (with a target) its sender on the current runtime;
/// returns the handles that stop them.
pub(super) fn spawn(plan: MediaPlan, store: &Arc<Store>) -> std::io::Result<MediaHandles> {
    let advertised = Arc::new(UdpSocket::from_std(plan.sockets.advertised)?);
    let other = match plan.sockets.other {
        Some(s) => Some(Arc::new(UdpSocket::from_std(s)?)),
        None => None,
    };
    let mut handles = MediaHandles::default();
    for (index, socket) in [Some(&advertised), other.as_ref()]
        .into_iter()
        .flatten()
        .enumerate()
    {
        let receiver = Receiver {
            call_id: plan.call_id.clone(),
            socket: Arc::clone(socket),
            local_port: socket.local_addr()?.port(),
            loss: Loss::new(&plan.call_id, &format!("rtp{index}"), plan.loss_share),
            record_audio: plan.record_audio,
            store: Arc::clone(store),
        };
        let stop = Arc::new(Notify::new());
        handles.receivers.push(Arc::clone(&stop));
        tokio::spawn(receiver.run(stop));
    }
    if let Some(target) = plan.target {
        let from = Arc::clone(other.as_ref().unwrap_or(&advertised));
        let sender = send_silence(plan.call_id, from, target, plan.codec, Arc::clone(store));
        handles.senders.push(tokio::spawn(sender).abort_handle());
    }
    Ok(handles)
}

struct Receiver {
    call_id: String,
    socket: Arc<UdpSocket>,
    local_port: u16,
    loss: Loss,
    record_audio: bool,
    store: Arc<Store>,
}

impl Receiver {
    async fn run(mut self, stop: Arc<Notify>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let received = tokio::select! {
                biased;
                received = self.socket.recv_from(&mut buf) => received,
                () = stop.notified() => {
                    // Whatever already arrived still counts.
                    while let Ok((len, source)) = self.socket.try_recv_from(&mut buf) {
                        self.handle(&buf[..len], source, Instant::now());
                    }
                    return;
                }
            };
            let (len, source) = match received {
                Ok(got) => got,
                Err(e) => {
                    // E.g. ECONNREFUSED reported for an earlier send: not fatal for receiving.
                    tracing::debug!(call_id = %self.call_id, error = %e, "sandbox RTP recv error");
                    continue;
                }
            };
            self.handle(&buf[..len], source, Instant::now());
        }
    }

    fn handle(&mut self, datagram: &[u8], source: SocketAddr, arrived_at: Instant) {
        if self.loss.drop_next() {
            self.store
                .update_quietly(&self.call_id, |c| c.rtp_lost += 1);
            return;
        }
        let Ok(packet) = RtpReader::new(datagram) else {
            tracing::debug!(call_id = %self.call_id, len = datagram.len(), "sandbox RTP: not an RTP packet");
            return;
        };
        let record = RtpRecord {
            arrived_at,
            seq: packet.sequence_number().into(),
            timestamp: packet.timestamp(),
            marker: packet.mark(),
            ssrc: packet.ssrc(),
            payload_type: packet.payload_type(),
            source,
            local_port: self.local_port,
            payload: if self.record_audio {
                packet.payload().to_vec()
            } else {
                Vec::new()
            },
        };
        self.store.update(&self.call_id, |c| c.rtp.push(record));
    }
}

/// Sends one packet of silence every 20 ms until aborted.
async fn send_silence(
    call_id: String,
    socket: Arc<UdpSocket>,
    target: SocketAddr,
    codec: Codec,
    store: Arc<Store>,
) {
    // Random SSRC/sequence/timestamp as RFC 3550 asks; a fixed start if the OS generator fails.
    let mut packetizer =
        Packetizer::random(codec).unwrap_or_else(|_| Packetizer::new(codec, 1, 1, 1));
    let mut ticker = tokio::time::interval(PACKET_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Ok(packet) = packetizer.packetize(&[]) else {
            return;
        };
        match socket.send_to(&packet, target).await {
            Ok(_) => store.update_quietly(&call_id, |c| c.rtp_sent += 1),
            // The gateway's socket may be gone (ICMP unreachable): keep the clock going.
            Err(e) => tracing::debug!(%call_id, error = %e, "sandbox RTP send error"),
        }
    }
}
