//! The trunk's event loop, on its own thread: one task owning the SIP socket, the timers and the
//! per-call media tasks, driving the sans-IO [`Uas`] with datagrams and timer firings and carrying
//! out the [`Action`]s it returns.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::media;
use super::uas::{Action, Timer, Uas};
use super::Shared;

/// Largest UDP payload; SIP over UDP stays far below it, but a datagram is never cut.
const MAX_DATAGRAM: usize = 65_535;

/// Runs until `shutdown` fires (or its sender is dropped).
pub(super) async fn run(
    socket: StdUdpSocket,
    shared: Arc<Shared>,
    local: SocketAddr,
    mut shutdown: oneshot::Receiver<()>,
) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "sandbox SIP trunk: cannot register its socket");
            return;
        }
    };
    let store = Arc::clone(&shared.store);
    let mut uas = Uas::new(shared, local);
    // Timers ordered by deadline; the counter keeps equal deadlines apart and in arming order.
    let mut timers: BTreeMap<(Instant, u64), Timer> = BTreeMap::new();
    let mut armed: u64 = 0;
    let mut media: HashMap<String, media::MediaHandles> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let next = timers
            .first_key_value()
            .map(|((at, _), _)| tokio::time::Instant::from_std(*at))
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let actions = tokio::select! {
            _ = &mut shutdown => break,
            got = socket.recv_from(&mut buf) => match got {
                Ok((len, from)) => uas.on_datagram(Instant::now(), &buf[..len], from),
                Err(e) => {
                    // Linux reports an ICMP port unreachable of an earlier send here.
                    tracing::debug!(error = %e, "sandbox SIP trunk: recv error");
                    continue;
                }
            },
            () = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                let mut actions = Vec::new();
                while let Some(entry) = timers.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    actions.extend(uas.on_timer(now, entry.remove()));
                }
                actions
            }
        };
        for action in actions {
            match action {
                Action::Send { to, bytes } => {
                    if let Err(e) = socket.send_to(&bytes, to).await {
                        tracing::debug!(%to, error = %e, "sandbox SIP trunk: send failed");
                    }
                }
                Action::Schedule { at, timer } => {
                    armed = armed.wrapping_add(1);
                    timers.insert((at, armed), timer);
                }
                Action::StartMedia(plan) => {
                    let call_id = plan.call_id.clone();
                    match media::spawn(plan, &store) {
                        Ok(handles) => {
                            media.insert(call_id, handles);
                        }
                        Err(e) => {
                            tracing::warn!(%call_id, error = %e, "sandbox trunk: RTP not started")
                        }
                    }
                }
                Action::StopMedia { call_id } => {
                    if let Some(handles) = media.remove(&call_id) {
                        handles.stop();
                    }
                }
            }
        }
    }
    for handles in media.into_values() {
        handles.stop();
    }
}
