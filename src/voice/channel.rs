//! Builds the voice channel from the configuration: binds the SIP socket (a taken `SIP_PORT` is a
//! start-up error naming it), starts the [`SipTransport`], the RTP port pool over
//! `RTP_PORT_START..=RTP_PORT_END`, the media thread, and loads the prompt clips.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;

use actix::Actor;
use anyhow::Context as _;

use actors::rtp::port_pool::PortPool;
use actors::rtp::prompt::{self, Clips, DigitGap};
use actors::rtp::stream::MediaEngine;
use actors::sip::digest::Credentials;
use actors::sip::message::{Endpoint, HostPort};
use actors::sip::transaction::TimerConfig;
use actors::sip::transport::{SipHealth, SipTransport, TransportSettings};
use actors::voice::{LiveCalls, VoiceChannel, VoiceSettings};

use crate::config::{Config, PromptPart, VoiceSpeed};
use crate::voice::prompts::PromptClips;

/// Where the trunk is and how we authenticate (the configured DIDWW trunk, or the sandbox's).
#[derive(Debug, Clone)]
pub struct TrunkTarget {
    /// Host and port of the trunk.
    pub host: HostPort,
    /// Digest credentials.
    pub credentials: Credentials,
}

/// A started voice channel and the health probe `/health` reads.
pub struct StartedVoice {
    /// Shared by every call.
    pub channel: Arc<VoiceChannel>,
    /// Trunk reachability from the keepalive.
    pub health: SipHealth,
    /// The bound SIP address.
    pub sip_addr: SocketAddr,
}

/// Starts the voice channel; must run inside the actix system.
pub fn start(config: &Config, trunk: TrunkTarget) -> anyhow::Result<StartedVoice> {
    let sip = &config.sip;
    let bind_ip = media_bind_ip(config);
    let socket = bind_sip_socket(SocketAddr::new(bind_ip, sip.sip_port))
        .with_context(|| format!("SIP_PORT {}: cannot bind UDP on {bind_ip}", sip.sip_port))?;
    let sip_addr = socket.local_addr()?;
    let clips = PromptClips::load(&config.voice).context("loading the voice prompts")?;

    let endpoint = Endpoint::new(trunk.host, sip.public_ip, sip_addr.port());
    let timers = timer_config(sip.t1);
    let health = SipHealth::default();
    let transport = SipTransport::new(
        socket,
        TransportSettings {
            endpoint: endpoint.clone(),
            keepalive_user: sip.caller_id.clone(),
            timers,
            keepalive_interval: sip.options_interval,
        },
        health.clone(),
    )
    .start();

    let settings = VoiceSettings {
        endpoint,
        credentials: trunk.credentials,
        caller_id: sip.caller_id.clone(),
        caller_id_us_canada: sip.caller_id_us_canada.clone(),
        timers,
        ring_timeout: sip.ring_timeout,
        max_duration: sip.max_call_duration,
        prompt: config
            .voice
            .prompt
            .iter()
            .map(|p| prompt_part(*p))
            .collect(),
        digit_gap: digit_gap(config.voice.speed),
        linger: timers.t4,
    };
    let channel = VoiceChannel {
        settings,
        transport,
        ports: PortPool::new(bind_ip, sip.rtp_port_start, sip.rtp_port_end),
        clips: Arc::new(to_clips(&clips)),
        media: MediaEngine::start().context("starting the media thread")?,
        live: LiveCalls::default(),
    };
    Ok(StartedVoice {
        channel: Arc::new(channel),
        health,
        sip_addr,
    })
}

/// Receive buffer asked for the SIP socket. A burst of calls brings a burst of responses while
/// the actor thread is busy placing them; the default (~208 KiB) overflowed at 200 simultaneous
/// dispatches in the benchmark, costing a T1 retransmission per lost datagram. The kernel caps it
/// at `net.core.rmem_max`.
const SIP_RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// A UDP socket on `addr` with a large receive buffer (the sandbox trunk uses it too).
pub fn bind_sip_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if let Err(err) = socket.set_recv_buffer_size(SIP_RECEIVE_BUFFER) {
        tracing::warn!(error = %err, "SIP socket receive buffer left at the system default");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// SIP and RTP listen on loopback in sandbox mode (nothing outside the machine needs them), and on
/// every interface of `PUBLIC_IP`'s family in live mode (the trunk must reach them; NAT in front
/// maps `PUBLIC_IP` to this host).
fn media_bind_ip(config: &Config) -> IpAddr {
    match (config.is_sandbox(), config.sip.public_ip) {
        (true, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (true, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (false, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (false, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// RFC 3261 timers from T1, keeping Timer D at its 32 s minimum for UDP (§17.1.1.2) whatever T1
/// is: it only absorbs retransmitted final responses, and a short one would answer them with 481.
fn timer_config(t1: std::time::Duration) -> TimerConfig {
    let mut timers = TimerConfig::from_t1(t1);
    timers.timer_d = timers.timer_d.max(std::time::Duration::from_secs(32));
    timers
}

fn prompt_part(part: PromptPart) -> prompt::PromptPart {
    match part {
        PromptPart::Intro => prompt::PromptPart::Clip("intro".into()),
        PromptPart::Repeating => prompt::PromptPart::Clip("repeating".into()),
        PromptPart::Goodbye => prompt::PromptPart::Clip("goodbye".into()),
        PromptPart::Digit(d) => prompt::PromptPart::Clip(d.to_string()),
        PromptPart::Code => prompt::PromptPart::Code,
    }
}

fn digit_gap(speed: VoiceSpeed) -> DigitGap {
    match speed {
        VoiceSpeed::Slow => DigitGap::SLOW,
        VoiceSpeed::Medium => DigitGap::MEDIUM,
        VoiceSpeed::Fast => DigitGap::FAST,
    }
}

fn to_clips(loaded: &PromptClips) -> Clips {
    let mut clips = Clips::new();
    for (name, samples) in loaded.iter() {
        clips.insert(name, Arc::clone(samples));
    }
    clips
}
