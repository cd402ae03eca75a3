//! Wiring: opens the database, starts the actors, the sandbox carrier when asked, and the API
//! listener; and shuts them down gracefully. [`start`] is what integration tests call; [`run`] is
//! what the binary calls.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use actors::broadcaster::Broadcaster;
use actors::code_vault::CodeVault;
use actors::dispatcher::{Dispatcher, StopAccepting};
use actors::events::EventSink;
use actors::provider_index::ProviderIndex;
use actors::services::{DeliverySettings, RequestServices};
use actors::sms_actor::{SmsActor, SmsSettings};
use actors::store::Store;
use actors::webhook::sender::{Flush, WebhookSender, WebhookSettings};

use crate::config::Config;
use crate::db::{self, DbStore};
use crate::http::{self, ApiState};
use crate::sandbox::sip::{SandboxTrunk, SandboxTrunkOptions};
use crate::sandbox::sms::{SandboxSms, SandboxSmsOptions, SmsBehaviour};
use crate::voice::channel::{self as voice_channel, TrunkTarget};
use actors::sip::digest::Credentials;
use actors::sip::message::HostPort;
use actors::voice::VoiceChannel;

/// Longest a graceful shutdown waits for due webhooks.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);
/// Longest a graceful shutdown waits for live calls to be hung up (BYE/CANCEL answered).
const SHUTDOWN_HANG_UP: Duration = Duration::from_secs(10);
/// Digest credentials of the simulated SIP trunk.
const SANDBOX_SIP_USER: &str = "sandbox";
const SANDBOX_SIP_PASSWORD: &str = "sandbox-sip";
/// Delay between the simulated carrier's 201 and each callback.
const SANDBOX_CALLBACK_DELAY: Duration = Duration::from_millis(20);

/// A running gateway.
pub struct Gateway {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// Its configuration.
    pub config: Arc<Config>,
    /// The dispatcher.
    pub dispatcher: Addr<Dispatcher>,
    /// The webhook sender.
    pub webhooks: Addr<WebhookSender>,
    /// The broadcaster (admin live feed).
    pub broadcaster: Addr<Broadcaster>,
    /// The store.
    pub store: DbStore,
    /// The simulated DIDWW SMS API, in sandbox mode.
    pub sandbox_sms: Option<SandboxSms>,
    /// Live SMS message ids (exposed so tests can check it does not grow).
    pub provider_index: Arc<ProviderIndex>,
    /// The voice channel.
    pub voice: Arc<VoiceChannel>,
    /// Where the SIP socket listens.
    pub sip_addr: SocketAddr,
    /// The simulated DIDWW SIP trunk, in sandbox mode.
    pub sandbox_trunk: Option<Arc<SandboxTrunk>>,
    /// The fraud engine, unless `FRAUD_ENABLED=false`.
    pub fraud: Option<crate::fraud::setup::Fraud>,
    server: actix_web::dev::ServerHandle,
}

impl Gateway {
    /// Base URL of the API, e.g. `http://127.0.0.1:8080`.
    pub fn api_url(&self) -> String {
        let host = if self.api_addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            self.api_addr.ip().to_string()
        };
        format!("http://{host}:{}", self.api_addr.port())
    }

    /// Graceful shutdown: refuse new requests, finish in-flight HTTP requests, deliver due webhooks,
    /// then stop the carrier simulator. Every accepted request is already durable.
    pub async fn shutdown(&self) {
        tracing::info!("shutting down");
        self.dispatcher.do_send(StopAccepting);
        self.server.stop(true).await;
        // Calls first: their final events join the webhook flush below, and no call may be left
        // open at the carrier.
        let left = self.voice.hang_up_all(SHUTDOWN_HANG_UP).await;
        if left > 0 {
            tracing::warn!(calls = left, "calls still winding down at shutdown");
        }
        let (done, flushed) = tokio::sync::oneshot::channel();
        self.webhooks.do_send(Flush(done));
        if tokio::time::timeout(SHUTDOWN_FLUSH, flushed).await.is_err() {
            tracing::warn!("webhooks still due at shutdown; they resume on next start");
        }
        if let Some(fraud) = &self.fraud {
            if let Err(err) = fraud.save_snapshot().await {
                tracing::error!(error = %err, "fraud state not saved at shutdown");
            }
        }
        // Everything queued for the database before this point is committed before we return.
        if let Err(err) = self.store.writer_barrier().await {
            tracing::error!(error = %err, "database writer could not be drained");
        }
        if let Some(sandbox) = &self.sandbox_sms {
            sandbox.stop().await;
        }
        if let Some(trunk) = &self.sandbox_trunk {
            trunk.stop();
        }
    }
}

/// Starts everything; must be called inside a running actix system.
pub async fn start(config: Config) -> anyhow::Result<Gateway> {
    let config = Arc::new(config);
    // The database first: its checks name DATABASE_PATH when the folder is missing or read-only.
    let (writer, pool) = db::open(&config.database_path)?;
    let key = crate::keys::load_or_create(&config.database_path)?;
    let vault = Arc::new(CodeVault::new(&key)?);
    let store = DbStore::new(writer, pool, &config.database_path)
        .context("starting the database writer")?;
    let shared_store: Arc<dyn Store> = Arc::new(store.clone());

    let listener =
        TcpListener::bind((config.bind_address, config.http_port)).with_context(|| {
            format!(
                "HTTP_PORT {}: cannot listen on {}",
                config.http_port, config.bind_address
            )
        })?;
    let api_addr = listener.local_addr()?;

    // SMS_ENABLED=false holds in the sandbox too, so an operator can try what voice alone does.
    let sandbox_sms = if config.is_sandbox() && config.sms.enabled {
        let token = config
            .webhooks
            .inbound_secret
            .as_ref()
            .map(|s| format!("?token={}", url_encode(s.expose())))
            .unwrap_or_default();
        let sandbox = SandboxSms::start(SandboxSmsOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            username: "sandbox".into(),
            password: "sandbox".into(),
            callback_url: format!("http://127.0.0.1:{}/webhooks/dlr{token}", api_addr.port()),
            callback_delay: SANDBOX_CALLBACK_DELAY,
            default_behaviour: SmsBehaviour::Delivered,
            max_records: config.sandbox_records,
        })
        .context("starting the sandbox SMS API")?;
        Some(sandbox)
    } else {
        None
    };

    let sandbox_trunk = if config.is_sandbox() {
        let trunk = SandboxTrunk::start(SandboxTrunkOptions {
            username: SANDBOX_SIP_USER.into(),
            password: SANDBOX_SIP_PASSWORD.into(),
            max_records: config.sandbox_records,
            record_audio: config.sandbox_record_audio,
            t1: config.sip.t1,
            ..SandboxTrunkOptions::default()
        })
        .context("starting the sandbox SIP trunk")?;
        Some(Arc::new(trunk))
    } else {
        None
    };
    let trunk = match &sandbox_trunk {
        Some(sandbox) => TrunkTarget {
            host: HostPort::parse(&sandbox.addr().to_string())
                .map_err(|e| anyhow::anyhow!("sandbox trunk address: {e}"))?,
            credentials: Credentials {
                username: SANDBOX_SIP_USER.into(),
                password: SANDBOX_SIP_PASSWORD.into(),
            },
        },
        None => TrunkTarget {
            host: HostPort::parse(&config.sip.host)
                .map_err(|e| anyhow::anyhow!("DIDWW_SIP_HOST: {e}"))?,
            credentials: Credentials {
                username: config.sip.username.clone(),
                password: config.sip.password.expose().to_owned(),
            },
        },
    };
    let voice = voice_channel::start(&config, trunk)?;
    let sip_addr = voice.sip_addr;

    let index = Arc::new(ProviderIndex::default());
    let provider_index = Arc::clone(&index);
    let sms = sms_settings(&config, sandbox_sms.as_ref()).map(|settings| {
        let index = Arc::clone(&index);
        SmsActor::new(settings, index).start()
    });
    let sms_enabled = sms.is_some();

    let broadcaster = Broadcaster::default().start();
    let webhooks = WebhookSender::new(
        WebhookSettings {
            timeout: config.webhooks.timeout,
            max_attempts: config.webhooks.max_attempts,
            signing_secret: config.webhooks.signing_secret.expose().as_bytes().to_vec(),
            allow_private: config.webhooks.allow_private,
            retry_base: config.webhooks.retry_base,
        },
        Arc::clone(&shared_store),
    )
    .start();
    let services = Arc::new(RequestServices {
        sink: EventSink::new(shared_store, broadcaster.clone(), webhooks.clone()),
        sms,
        voice: Some(Arc::clone(&voice.channel)),
        index,
        vault,
        settings: DeliverySettings {
            failover: config.channels.enable_failover,
            sms_delivery_timeout: config.sms.delivery_timeout,
            otp_ttl: config.otp_ttl,
            expiry_sweep_interval: config.expiry_sweep_interval,
            // A callback for an unknown id waits for the SMS submissions already under way when it
            // arrived: at most as long as one submission may take.
            callback_patience: config.sms.api_timeout,
        },
        timings: Arc::default(),
    });
    let fraud = crate::fraud::setup::start(&config, &store).await?;
    let dispatcher = match &fraud {
        Some(fraud) => Dispatcher::new(services).with_fraud(fraud.actor.clone()),
        None => Dispatcher::new(services),
    }
    .start();

    schedule_retention(store.clone(), config.data_retention_days);

    let state = web::Data::new(ApiState {
        config: Arc::clone(&config),
        dispatcher: dispatcher.clone(),
        store: store.clone(),
        started: Instant::now(),
        sms_enabled,
        sip_health: Some(voice.health.clone()),
        sandbox_trunk: sandbox_trunk.clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(http::configure)
    })
    .disable_signals()
    .shutdown_timeout(10)
    .backlog(4096)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);

    Ok(Gateway {
        api_addr,
        config,
        dispatcher,
        webhooks,
        broadcaster,
        store,
        sandbox_sms,
        provider_index,
        voice: voice.channel,
        sip_addr,
        sandbox_trunk,
        fraud,
        server: handle,
    })
}

/// Deletes data older than `DATA_RETENTION_DAYS`, a minute after start and then every hour.
fn schedule_retention(store: DbStore, days: u32) {
    const FIRST_RUN: Duration = Duration::from_secs(60);
    const EVERY: Duration = Duration::from_secs(3600);
    let keep_ms = i64::from(days).saturating_mul(86_400_000);
    actix_rt::spawn(async move {
        actix_rt::time::sleep(FIRST_RUN).await;
        let mut ticks = actix_rt::time::interval(EVERY);
        loop {
            ticks.tick().await;
            match store
                .purge_before(actors::clock::now_ms().saturating_sub(keep_ms))
                .await
            {
                Ok((0, 0)) => {}
                Ok((requests, callbacks)) => {
                    tracing::info!(requests, callbacks, days, "retention: old data deleted")
                }
                Err(err) => tracing::error!(error = %err, "retention run failed"),
            }
        }
    });
}

/// The SMS client settings, or `None` when SMS is off.
fn sms_settings(config: &Config, sandbox: Option<&SandboxSms>) -> Option<SmsSettings> {
    if let Some(sandbox) = sandbox {
        return Some(SmsSettings {
            endpoint: sandbox.endpoint(),
            username: "sandbox".into(),
            password: "sandbox".into(),
            source: config.sms.caller_id.clone(),
            template: config.sms.message_template.clone(),
            timeout: config.sms.api_timeout,
        });
    }
    if !config.sms.enabled {
        return None;
    }
    Some(SmsSettings {
        endpoint: config.sms.api_endpoint.clone(),
        username: config.sms.username.clone().unwrap_or_default(),
        password: config
            .sms
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default(),
        source: config.sms.caller_id.clone(),
        template: config.sms.message_template.clone(),
        timeout: config.sms.api_timeout,
    })
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Runs the gateway until SIGTERM or Ctrl-C, then shuts down gracefully. The signal handlers are
/// installed before anything starts, so a SIGTERM that arrives during start-up or right after the
/// banner still means a graceful stop (exit 0), never the default instant death. A second signal
/// during the shutdown ends it at once (exit 1): every accepted request is already durable.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut signals = StopSignals::install();
    let gateway = start(config).await?;
    announce(&gateway);
    wait_for_signal(&mut signals).await;
    tokio::select! {
        () = gateway.shutdown() => {}
        () = wait_for_signal(&mut signals) => {
            anyhow::bail!("second stop signal: exited before the graceful shutdown finished");
        }
    }
    Ok(())
}

fn announce(gateway: &Gateway) {
    let config = &gateway.config;
    for line in config.summary_lines() {
        tracing::info!("{line}");
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(url = %gateway.api_url(), mode = config.mode.as_str(), "API listening");
    if config.is_sandbox() {
        let bar = "=".repeat(72);
        println!("{bar}");
        println!("  SANDBOX MODE: nothing reaches DIDWW. A simulated carrier answers on loopback.");
        println!("  API:         {}", gateway.api_url());
        if let Some(sms) = &gateway.sandbox_sms {
            println!("  Sandbox SMS: {}", sms.endpoint());
        }
        if let Some(trunk) = &gateway.sandbox_trunk {
            println!(
                "  Sandbox SIP: {} (simulated trunk; SIP UA on {})",
                trunk.addr(),
                gateway.sip_addr
            );
        }
        println!("  Database:    {}", config.database_path.display());
        if config.api_secret_generated {
            println!(
                "  API secret:  {}   (generated; set API_SECRET to choose one)",
                config.api_secret.expose()
            );
        } else {
            println!("  API secret:  from API_SECRET");
        }
        println!(
            "  Try:  curl -s {}/dispatch -H 'Content-Type: application/json' \\",
            gateway.api_url()
        );
        println!("          -H 'X-API-Secret: <secret>' -d '{{\"phone\":\"+14155552671\",\"code\":\"123456\",\"channels\":[\"voice\",\"sms\"]}}'");
        println!("{bar}");
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from the moment [`StopSignals::install`] is called.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Installs the handlers now (must run inside the runtime).
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let term = signal(SignalKind::terminate())
                .map_err(|err| tracing::warn!(error = %err, "cannot listen for SIGTERM"))
                .ok();
            let int = signal(SignalKind::interrupt())
                .map_err(|err| tracing::warn!(error = %err, "cannot listen for SIGINT"))
                .ok();
            Self { term, int }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }
}

/// Resolves at the next SIGTERM or SIGINT.
async fn wait_for_signal(signals: &mut StopSignals) {
    #[cfg(unix)]
    {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    // `None` would mean the driver is gone: never a reason to stop.
                    if signal.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
        if signals.term.is_none() && signals.int.is_none() {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
        tokio::select! {
            () = next(&mut signals.term) => tracing::info!("SIGTERM received"),
            () = next(&mut signals.int) => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = signals;
        let _ = tokio::signal::ctrl_c().await;
    }
}
