//! Configuration from the environment (SPEC §2).
//!
//! [`Config::from_env`] reads every variable once at start, validates all of them and returns either
//! a complete [`Config`] or [`ConfigErrors`] listing **every** problem, one per line, so the operator
//! fixes them in one round (vaultwarden's `validate_config`). The testable core is
//! [`Config::from_vars`], which takes the variables as a map. The result is passed around as
//! `Arc<Config>`; there is no global, so tests build their own ([`Config::for_tests`]).
//!
//! Shared rules: an empty value means unset; any variable `X` may instead be given as `X_FILE`
//! naming a file that holds the value (Docker secrets; one trailing newline is trimmed; setting both
//! is an error); booleans are `true/false/1/0/yes/no` in any case and nothing else; secrets live in
//! [`Secret`], which prints as `***`.
//!
//! Live mode needs the DIDWW trunk credentials, `PUBLIC_IP` and `API_SECRET`. Sandbox mode
//! (`SANDBOX=true` or `--sandbox`) needs nothing: it generates what is missing, binds to loopback and
//! turns the admin panel on; the sandbox wiring then points SIP and SMS at the simulated carrier.
//!
//! `.env.example` documents every name in [`KNOWN_VARIABLES`]; `tests/env_example.rs` keeps the two
//! in step.

mod error;

mod secret;
mod vars;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use actors::Channel;

pub use actors::ipnet::IpNet;
pub use error::{ConfigError, ConfigErrors};
pub use secret::Secret;
use vars::{Vars, FILE_SUFFIX};

/// Every variable the gateway reads, grouped as in `.env.example`. Each may also be given as
/// `<NAME>_FILE`.
pub const KNOWN_VARIABLES: &[&str] = &[
    // Mode
    "SANDBOX",
    // SIP trunk
    "DIDWW_SIP_HOST",
    "DIDWW_USERNAME",
    "DIDWW_PASSWORD",
    "DIDWW_CALLER_ID",
    "DIDWW_DID_NUMBER",
    "DIDWW_CALLER_ID_US_CANADA",
    "PUBLIC_IP",
    "SIP_PORT",
    "RTP_PORT_START",
    "RTP_PORT_END",
    "CALL_RING_TIMEOUT_SECS",
    "CALL_MAX_DURATION_SECS",
    "SIP_T1_MS",
    "SIP_OPTIONS_INTERVAL_SECS",
    // Voice
    "OTP_MESSAGE_TEMPLATE",
    "OTP_VOICE_SPEED",
    "OTP_VOICE_LANGUAGE",
    "VOICE_PROMPTS_DIR",
    // SMS
    "SMS_ENABLED",
    "SMS_USERNAME",
    "SMS_PASSWORD",
    "SMS_API_ENDPOINT",
    "SMS_MESSAGE_TEMPLATE",
    "SMS_CALLER_ID",
    "SMS_DELIVERY_TIMEOUT_SECS",
    "SMS_API_TIMEOUT_MS",
    // Channels
    "CHANNELS_DEFAULT",
    "CHANNELS_ENABLE_FAILOVER",
    // Fraud
    "FRAUD_ENABLED",
    "FRAUD_MODE",
    "FRAUD_RATE_LIMIT_MINUTE",
    "FRAUD_RATE_LIMIT_HOUR",
    "FRAUD_SUBNET_LIMIT_MINUTE",
    "FRAUD_SUBNET_LIMIT_HOUR",
    "FRAUD_SHADOW_BAN_THRESHOLD",
    "FRAUD_GEO_MISMATCH_PENALTY",
    "FRAUD_ALLOWED_COUNTRIES",
    "FRAUD_WHITELIST",
    "ASN_DB_PATH",
    "GEOIP_DB_PATH",
    // Admin
    "ADMIN_ENABLED",
    "ADMIN_USERNAME",
    "ADMIN_PASSWORD",
    "ADMIN_PORT",
    "ADMIN_SESSION_SECRET",
    "ADMIN_SESSION_TTL",
    "ADMIN_COOKIE_SECURE",
    "ADMIN_CORS_ORIGINS",
    "ADMIN_IP_WHITELIST",
    // Webhooks
    "WEBHOOK_TIMEOUT_MS",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_SIGNING_SECRET",
    "WEBHOOK_ALLOW_PRIVATE",
    "WEBHOOK_INBOUND_SECRET",
    "WEBHOOK_RETRY_BASE_MS",
    // CDR
    "CDR_ENABLED",
    "CDR_TARGET_TRUNK_ID",
    "CDR_LEARNING_INTERVAL_MINUTES",
    "CDR_LEARNING_BATCH_SIZE",
    // Server
    "API_SECRET",
    "BIND_ADDRESS",
    "HTTP_PORT",
    "TRUST_PROXY",
    "DATABASE_PATH",
    "OTP_TTL_SECS",
    "DATA_RETENTION_DAYS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "EXPIRY_SWEEP_INTERVAL_MS",
];

/// Environment names starting with one of these but not in [`KNOWN_VARIABLES`] draw a start-up
/// warning: they are typos or settings of the predecessor that this gateway does not read.
const OUR_PREFIXES: &[&str] = &[
    "DIDWW_",
    "SIP_",
    "RTP_",
    "CALL_",
    "OTP_",
    "VOICE_",
    "SMS_",
    "CHANNELS_",
    "FRAUD_",
    "ASN_",
    "GEOIP_",
    "ADMIN_",
    "WEBHOOK_",
    "CDR_",
];

/// The caller ID used in sandbox mode when none is configured: a number from the 555-01xx range
/// reserved for fiction, so it can never reach a real subscriber.
pub const SANDBOX_CALLER_ID: &str = "15550100000";

/// Cap on the webhook retry delay: doubling from `WEBHOOK_RETRY_BASE_MS` stops growing here.
pub const WEBHOOK_RETRY_CAP: Duration = Duration::from_secs(600);

/// Cap on the connect timeout of DIDWW SMS API calls (the response timeout is `SMS_API_TIMEOUT_MS`).
pub const SMS_CONNECT_TIMEOUT_CAP: Duration = Duration::from_secs(5);

const DEFAULT_SMS_API_ENDPOINT: &str = "https://us.sms-out.didww.com/outbound_messages";
const DEFAULT_SMS_TEMPLATE: &str = "Your verification code is: {code}";
const DEFAULT_VOICE_TEMPLATE: &str = "intro {code} repeating {code} goodbye";
const MIN_API_SECRET: usize = 16;
const MIN_ADMIN_PASSWORD: usize = 8;
const MIN_SESSION_SECRET: usize = 16;
const MIN_SIGNING_SECRET: usize = 16;

/// Live traffic through DIDWW, or the built-in simulated carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Sandbox,
}

impl Mode {
    /// `live` or `sandbox`, as shown in `/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Sandbox => "sandbox",
        }
    }
}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `OTP_VOICE_SPEED`: the gap between spoken digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceSpeed {
    Slow,
    Medium,
    Fast,
}

impl VoiceSpeed {
    pub fn as_str(self) -> &'static str {
        match self {
            VoiceSpeed::Slow => "slow",
            VoiceSpeed::Medium => "medium",
            VoiceSpeed::Fast => "fast",
        }
    }
}

/// One element of `OTP_MESSAGE_TEMPLATE`: a prompt clip, or the code spelled digit by digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptPart {
    /// `intro.wav`
    Intro,
    /// `repeating.wav`
    Repeating,
    /// `goodbye.wav`
    Goodbye,
    /// `0.wav` … `9.wav` as a fixed clip.
    Digit(u8),
    /// `{code}`: the OTP, one digit clip per digit with the `OTP_VOICE_SPEED` gap between them.
    Code,
}

impl PromptPart {
    /// The clip's file stem (`intro`, `7`), or `None` for [`PromptPart::Code`].
    pub fn clip_name(self) -> Option<String> {
        match self {
            PromptPart::Intro => Some("intro".to_string()),
            PromptPart::Repeating => Some("repeating".to_string()),
            PromptPart::Goodbye => Some("goodbye".to_string()),
            PromptPart::Digit(d) => Some(d.to_string()),
            PromptPart::Code => None,
        }
    }
}

/// `FRAUD_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FraudMode {
    /// Block, rate-limit and shadow-ban.
    Enforce,
    /// Score and record what would have happened, but deliver everything.
    Monitor,
}

/// `ADMIN_COOKIE_SECURE`: when the session cookie gets the `Secure` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// When the request arrived over HTTPS (directly or per `X-Forwarded-Proto` from a trusted proxy).
    Auto,
    Always,
    Never,
}

/// The DIDWW SIP trunk and local SIP/RTP sockets. In sandbox mode the credentials may be empty: the
/// sandbox wiring points the trunk at the simulated carrier.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// `DIDWW_SIP_HOST`: `host` or `host:port` (IPv6 as `[addr]:port`).
    pub host: String,
    pub username: String,
    pub password: Secret,
    /// Digits only (E.164 without `+`).
    pub caller_id: String,
    /// Digits only; used for +1 destinations when set.
    pub caller_id_us_canada: Option<String>,
    /// Put in SDP and Contact.
    pub public_ip: IpAddr,
    pub sip_port: u16,
    pub rtp_port_start: u16,
    pub rtp_port_end: u16,
    pub ring_timeout: Duration,
    pub max_call_duration: Duration,
    /// `SIP_T1_MS`: RFC 3261 T1, the round-trip estimate all SIP retransmission timers derive
    /// from.
    pub t1: Duration,
    /// `SIP_OPTIONS_INTERVAL_SECS`: time between keepalive OPTIONS to the trunk.
    pub options_interval: Duration,
}

impl SipConfig {
    /// The trunk host and port (5060 when `DIDWW_SIP_HOST` names none); IPv6 without brackets.
    pub fn host_and_port(&self) -> (&str, u16) {
        split_host_port(&self.host)
            .map(|(host, port)| (host, port.unwrap_or(5060)))
            .unwrap_or((self.host.as_str(), 5060))
    }
}

/// Voice prompt settings (SPEC §7).
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    /// `OTP_MESSAGE_TEMPLATE` as written (normalised to single spaces).
    pub message_template: String,
    /// The template parsed: the clips to play in order.
    pub prompt: Vec<PromptPart>,
    pub speed: VoiceSpeed,
    /// `OTP_VOICE_LANGUAGE`: the prompt subfolder (`en`).
    pub language: String,
    /// `VOICE_PROMPTS_DIR`: recordings replacing the built-in clips; `None` = built-in.
    pub prompts_dir: Option<PathBuf>,
}

/// The DIDWW SMS OUT API.
#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub enabled: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// An http(s) URL.
    pub api_endpoint: String,
    /// Contains `{code}`.
    pub message_template: String,
    /// Digits only; `SMS_CALLER_ID`, else `DIDWW_CALLER_ID`.
    pub caller_id: String,
    /// How long to wait for a delivered DLR before failing over.
    pub delivery_timeout: Duration,
    /// Response timeout of one API call.
    pub api_timeout: Duration,
}

impl SmsConfig {
    /// Connect timeout of one API call: `api_timeout`, at most 5 s (a slow connect means the API
    /// is unreachable, and the caller is waiting).
    pub fn connect_timeout(&self) -> Duration {
        self.api_timeout.min(SMS_CONNECT_TIMEOUT_CAP)
    }
}

#[derive(Debug, Clone)]
pub struct ChannelsConfig {
    /// `CHANNELS_DEFAULT`: channels of a request that names none, in failover order. Non-empty,
    /// no duplicates.
    pub default: Vec<Channel>,
    pub enable_failover: bool,
}

/// The fraud engine (SPEC §8).
#[derive(Debug, Clone)]
pub struct FraudConfig {
    pub enabled: bool,
    pub mode: FraudMode,
    /// Per phone number.
    pub rate_limit_minute: u32,
    pub rate_limit_hour: u32,
    /// Per /24 (IPv4) or /64 (IPv6).
    pub subnet_limit_minute: u32,
    pub subnet_limit_hour: u32,
    /// Score at or above which a request is shadow-banned.
    pub shadow_ban_threshold: u32,
    /// Points when the IP's country differs from the phone's.
    pub geo_mismatch_penalty: u32,
    /// Upper-case ISO 3166 alpha-2 codes; empty = every country allowed.
    pub allowed_countries: Vec<String>,
    /// `FRAUD_WHITELIST`: phones (`+E164`) that bypass every rule, added to the database list at
    /// start.
    pub whitelist_phones: Vec<String>,
    /// `FRAUD_WHITELIST`: end-user IPs and networks (v4/v6) that bypass every rule.
    pub whitelist_nets: Vec<IpNet>,
    pub asn_db_path: PathBuf,
    pub geoip_db_path: PathBuf,
}

/// The admin panel (SPEC §9).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub enabled: bool,
    pub username: String,
    /// Always `Some` when `enabled`.
    pub password: Option<Secret>,
    /// True when the password was generated (sandbox): print it once at start.
    pub password_generated: bool,
    pub port: u16,
    /// `None`: the admin code generates a per-process secret and warns that sessions will not
    /// survive a restart.
    pub session_secret: Option<Secret>,
    pub session_ttl: Duration,
    pub cookie_secure: CookieSecure,
    /// Serialised origins (`https://admin.example.com`, `http://localhost:5173`); never `*`.
    pub cors_origins: Vec<String>,
    /// Empty = every IP allowed.
    pub ip_whitelist: Vec<IpNet>,
}

impl AdminConfig {
    /// True when `ip` may reach the admin port.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.ip_whitelist.is_empty() || self.ip_whitelist.iter().any(|net| net.contains(ip))
    }
}

/// Client webhooks (SPEC §6) and the DIDWW callback token.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Per attempt.
    pub timeout: Duration,
    /// Total attempts, including the first.
    pub max_attempts: u32,
    /// `WEBHOOK_SIGNING_SECRET`, else `API_SECRET`.
    pub signing_secret: Secret,
    /// Lifts the SSRF address rule (local development only).
    pub allow_private: bool,
    /// Token required on `/webhooks/dlr` and `/webhooks/cdr`; `None` = accepted unauthenticated.
    pub inbound_secret: Option<Secret>,
    /// Delay before the first retry.
    pub retry_base: Duration,
}

impl WebhookConfig {
    /// The delay before retrying after `failed_attempts` failed attempts (1 = after the first):
    /// `retry_base`, doubling each time, at most [`WEBHOOK_RETRY_CAP`].
    pub fn retry_delay(&self, failed_attempts: u32) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(31);
        self.retry_base
            .checked_mul(1u32 << doublings)
            .unwrap_or(WEBHOOK_RETRY_CAP)
            .min(WEBHOOK_RETRY_CAP)
    }
}

/// DIDWW CDR ingest and rate learning (SPEC §10).
#[derive(Debug, Clone)]
pub struct CdrConfig {
    pub enabled: bool,
    /// Lower-case UUID; CDRs of other trunks are ignored. `None` = keep all.
    pub target_trunk_id: Option<String>,
    pub learning_interval: Duration,
    pub learning_batch_size: u32,
}

/// The whole configuration. `Debug` is safe to log: secrets print as `***`.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub api_secret: Secret,
    /// True when the API secret was generated (sandbox): print it once at start.
    pub api_secret_generated: bool,
    /// The address the HTTP listeners (API and admin) bind.
    pub bind_address: IpAddr,
    pub http_port: u16,
    /// Number of trusted reverse-proxy hops (SPEC §3).
    pub trust_proxy: u32,
    pub database_path: PathBuf,
    pub otp_ttl: Duration,
    pub data_retention_days: u32,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub log_level: String,
    pub log_format: LogFormat,
    /// How often requests past `otp_ttl` are marked expired.
    pub expiry_sweep_interval: Duration,
    pub sip: SipConfig,
    pub voice: VoiceConfig,
    pub sms: SmsConfig,
    pub channels: ChannelsConfig,
    pub fraud: FraudConfig,
    pub admin: AdminConfig,
    pub webhooks: WebhookConfig,
    pub cdr: CdrConfig,
    /// Non-fatal findings to log at start (unknown variables, risky settings).
    pub warnings: Vec<String>,
    /// How many requests/callbacks the sandbox carrier keeps for inspection (not an environment
    /// variable: 1,000 for `--sandbox`, more in tests, 0 in benchmarks).
    pub sandbox_records: usize,
    /// Whether the sandbox SIP trunk keeps the payload of every RTP packet it receives (not an
    /// environment variable: on for `--sandbox` and tests, which inspect the audio; off in
    /// benchmarks, which need only arrival times and must not grow by 160 bytes per packet).
    pub sandbox_record_audio: bool,
}

impl Config {
    /// Reads the process environment (including `X_FILE` variants). `sandbox_flag` is the
    /// `--sandbox` command-line switch; `SANDBOX=true` has the same effect.
    pub fn from_env(sandbox_flag: bool) -> Result<Config, ConfigErrors> {
        let mut vars = HashMap::new();
        let mut errors = Vec::new();
        // vars_os, not vars: std::env::vars panics on a non-UTF-8 value anywhere in the
        // environment, even in variables we never read.
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => {
                    vars.insert(key.to_string(), value);
                }
                Err(_) => {
                    let base = key.strip_suffix(FILE_SUFFIX).unwrap_or(key);
                    if KNOWN_VARIABLES.contains(&base) {
                        errors.push(ConfigError {
                            variable: key.to_string(),
                            message: "is not valid UTF-8".to_string(),
                        });
                    }
                }
            }
        }
        load(&vars, sandbox_flag, errors)
    }

    /// Builds the configuration from `vars` (name → value, as in the environment; `X_FILE`
    /// entries are read from disk).
    pub fn from_vars(
        vars: &HashMap<String, String>,
        sandbox_flag: bool,
    ) -> Result<Config, ConfigErrors> {
        load(vars, sandbox_flag, Vec::new())
    }

    pub fn is_sandbox(&self) -> bool {
        self.mode == Mode::Sandbox
    }

    /// A sandbox configuration for integration tests: fixed secrets, private webhook targets
    /// allowed, ephemeral HTTP ports (`0`) and short timers so tests wait on events, not sleeps.
    pub fn for_tests(database_path: PathBuf) -> Config {
        let api_secret = Secret::new("test-secret-0123456789");
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Config {
            mode: Mode::Sandbox,
            api_secret: api_secret.clone(),
            api_secret_generated: false,
            bind_address: localhost,
            http_port: 0,
            trust_proxy: 0,
            database_path,
            otp_ttl: Duration::from_secs(600),
            data_retention_days: 90,
            log_level: "debug".to_string(),
            log_format: LogFormat::Text,
            expiry_sweep_interval: Duration::from_millis(100),
            sip: SipConfig {
                host: String::new(),
                username: String::new(),
                password: Secret::default(),
                caller_id: SANDBOX_CALLER_ID.to_string(),
                caller_id_us_canada: None,
                public_ip: localhost,
                sip_port: 0,
                // Below the ephemeral range, so no port-0 socket takes them; gateways of parallel
                // tests share it (the pool skips ports another one holds).
                rtp_port_start: 20000,
                rtp_port_end: 20998,
                ring_timeout: Duration::from_secs(30),
                max_call_duration: Duration::from_secs(120),
                t1: Duration::from_millis(50),
                options_interval: Duration::from_secs(30),
            },
            voice: VoiceConfig {
                message_template: DEFAULT_VOICE_TEMPLATE.to_string(),
                prompt: default_prompt(),
                speed: VoiceSpeed::Medium,
                language: "en".to_string(),
                prompts_dir: None,
            },
            sms: SmsConfig {
                enabled: true,
                username: None,
                password: None,
                api_endpoint: DEFAULT_SMS_API_ENDPOINT.to_string(),
                message_template: DEFAULT_SMS_TEMPLATE.to_string(),
                caller_id: SANDBOX_CALLER_ID.to_string(),
                delivery_timeout: Duration::from_secs(2),
                api_timeout: Duration::from_secs(5),
            },
            channels: ChannelsConfig {
                default: vec![Channel::Sms, Channel::Voice],
                enable_failover: true,
            },
            fraud: FraudConfig {
                enabled: true,
                mode: FraudMode::Enforce,
                rate_limit_minute: 2,
                rate_limit_hour: 5,
                subnet_limit_minute: 10,
                subnet_limit_hour: 60,
                shadow_ban_threshold: 50,
                geo_mismatch_penalty: 20,
                allowed_countries: Vec::new(),
                whitelist_phones: Vec::new(),
                whitelist_nets: Vec::new(),
                asn_db_path: PathBuf::from("/data/asn.mmdb"),
                geoip_db_path: PathBuf::from("/data/country.mmdb"),
            },
            admin: AdminConfig {
                enabled: true,
                username: "admin".to_string(),
                password: Some(Secret::new("test-admin-password")),
                password_generated: false,
                port: 0,
                session_secret: Some(Secret::new("test-session-secret-0123456789")),
                session_ttl: Duration::from_secs(480 * 60),
                cookie_secure: CookieSecure::Auto,
                cors_origins: Vec::new(),
                ip_whitelist: Vec::new(),
            },
            webhooks: WebhookConfig {
                timeout: Duration::from_secs(2),
                max_attempts: 6,
                signing_secret: api_secret,
                allow_private: true,
                inbound_secret: None,
                retry_base: Duration::from_millis(50),
            },
            cdr: CdrConfig {
                enabled: true,
                target_trunk_id: None,
                learning_interval: Duration::from_secs(3600),
                learning_batch_size: 1000,
            },
            warnings: Vec::new(),
            sandbox_records: crate::sandbox::sms::MAX_RECORDS,
            sandbox_record_audio: true,
        }
    }

    /// The configuration as log lines for start-up, without any secret (only whether each is
    /// set).
    pub fn summary_lines(&self) -> Vec<String> {
        let on_off = |b: bool| if b { "on" } else { "off" };
        let set = |s: &Option<Secret>| if s.is_some() { "set" } else { "not set" };
        let mut lines = vec![
            format!(
                "mode: {}{}",
                self.mode.as_str(),
                if self.is_sandbox() {
                    " (simulated carrier; nothing reaches real phones)"
                } else {
                    ""
                }
            ),
            format!(
                "api: http on {}:{}, trusted proxy hops {}, api secret {}",
                self.bind_address,
                self.http_port,
                self.trust_proxy,
                if self.api_secret_generated {
                    "generated"
                } else {
                    "set"
                }
            ),
            format!(
                "database: {} (OTP TTL {}s, expiry sweep every {}ms, retention {} days)",
                self.database_path.display(),
                self.otp_ttl.as_secs(),
                self.expiry_sweep_interval.as_millis(),
                self.data_retention_days
            ),
            format!(
                "log: level {}, format {}",
                self.log_level,
                match self.log_format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }
            ),
        ];
        let sip = &self.sip;
        lines.push(format!(
            "sip: trunk {}, caller ID {}{}, public IP {}, SIP port {}/udp, RTP {}-{}/udp, \
             ring timeout {}s, max call {}s, T1 {}ms, keepalive every {}s",
            if self.is_sandbox() {
                "simulated on loopback".to_owned()
            } else {
                format!("{} user {:?}", sip.host, sip.username)
            },
            sip.caller_id,
            sip.caller_id_us_canada
                .as_deref()
                .map(|c| format!(" (US/Canada {c})"))
                .unwrap_or_default(),
            sip.public_ip,
            sip.sip_port,
            sip.rtp_port_start,
            sip.rtp_port_end,
            sip.ring_timeout.as_secs(),
            sip.max_call_duration.as_secs(),
            sip.t1.as_millis(),
            sip.options_interval.as_secs()
        ));
        lines.push(format!(
            "voice: template {:?}, speed {}, language {}, prompts {}",
            self.voice.message_template,
            self.voice.speed.as_str(),
            self.voice.language,
            self.voice
                .prompts_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in".to_string())
        ));
        let sms = &self.sms;
        lines.push(if sms.enabled {
            format!(
                "sms: on via {}, caller ID {}, delivery timeout {}s, API timeout {}ms",
                sms.api_endpoint,
                sms.caller_id,
                sms.delivery_timeout.as_secs(),
                sms.api_timeout.as_millis()
            )
        } else {
            "sms: off".to_string()
        });
        let channels: Vec<&str> = self.channels.default.iter().map(|c| c.as_str()).collect();
        lines.push(format!(
            "channels: default {}, failover {}",
            channels.join(","),
            on_off(self.channels.enable_failover)
        ));
        let fraud = &self.fraud;
        lines.push(if fraud.enabled {
            format!(
                "fraud: {}, per phone {}/min {}/h, per subnet {}/min {}/h, shadow ban at {}, \
                 geo mismatch +{}, countries {}, ASN DB {}, GeoIP DB {}",
                match fraud.mode {
                    FraudMode::Enforce => "enforce",
                    FraudMode::Monitor => "monitor only",
                },
                fraud.rate_limit_minute,
                fraud.rate_limit_hour,
                fraud.subnet_limit_minute,
                fraud.subnet_limit_hour,
                fraud.shadow_ban_threshold,
                fraud.geo_mismatch_penalty,
                if fraud.allowed_countries.is_empty() {
                    "all".to_string()
                } else {
                    fraud.allowed_countries.join(",")
                },
                fraud.asn_db_path.display(),
                fraud.geoip_db_path.display()
            )
        } else {
            "fraud: off".to_string()
        });
        let admin = &self.admin;
        lines.push(if admin.enabled {
            format!(
                "admin: on at http://{}:{}/ user {:?}, password {}, session secret {}, TTL {} min, \
                 secure cookie {}, CORS {}, IP whitelist {}",
                self.bind_address,
                admin.port,
                admin.username,
                if admin.password_generated {
                    "generated"
                } else {
                    "set"
                },
                if admin.session_secret.is_some() {
                    "set"
                } else {
                    "random per process"
                },
                admin.session_ttl.as_secs() / 60,
                match admin.cookie_secure {
                    CookieSecure::Auto => "auto",
                    CookieSecure::Always => "always",
                    CookieSecure::Never => "never",
                },
                if admin.cors_origins.is_empty() {
                    "none".to_string()
                } else {
                    admin.cors_origins.join(",")
                },
                if admin.ip_whitelist.is_empty() {
                    "all".to_string()
                } else {
                    admin
                        .ip_whitelist
                        .iter()
                        .map(IpNet::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                }
            )
        } else {
            "admin: off".to_string()
        });
        let hooks = &self.webhooks;
        lines.push(format!(
            "webhooks: timeout {}ms, {} attempts, first retry after {}ms, private targets {}, \
             inbound token {}",
            hooks.timeout.as_millis(),
            hooks.max_attempts,
            hooks.retry_base.as_millis(),
            if hooks.allow_private {
                "ALLOWED"
            } else {
                "blocked"
            },
            set(&hooks.inbound_secret)
        ));
        let cdr = &self.cdr;
        lines.push(if cdr.enabled {
            format!(
                "cdr: on, trunk {}, rate learning every {} min over {} CDRs",
                cdr.target_trunk_id.as_deref().unwrap_or("any"),
                cdr.learning_interval.as_secs() / 60,
                cdr.learning_batch_size
            )
        } else {
            "cdr: off".to_string()
        });
        lines
    }
}

fn load(
    map: &HashMap<String, String>,
    sandbox_flag: bool,
    errors: Vec<ConfigError>,
) -> Result<Config, ConfigErrors> {
    let mut v = Vars::new(map, errors);
    let mut config = build(&mut v, sandbox_flag);
    v.warn_unknown(KNOWN_VARIABLES, OUR_PREFIXES);
    config.warnings = v.finish()?;
    Ok(config)
}

/// Reads every variable; the result is meaningful only if `v` collected no error.
fn build(v: &mut Vars<'_>, sandbox_flag: bool) -> Config {
    let sandbox = v.bool("SANDBOX", false) || sandbox_flag;
    let mode = if sandbox { Mode::Sandbox } else { Mode::Live };
    let live = !sandbox;

    let (api_secret, api_secret_generated) = match v.secret("API_SECRET", MIN_API_SECRET, live) {
        Some(secret) => (secret, false),
        None if live => {
            v.missing(
                "API_SECRET",
                "must be at least 16 characters (required in live mode)",
            );
            (Secret::default(), false)
        }
        None => (generated(v, "API_SECRET", 16), true),
    };

    let default_bind = if live {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let bind_address = v
        .parsed("BIND_ADDRESS", "an IP address")
        .unwrap_or(default_bind);
    let http_port = v.int("HTTP_PORT", 8080u16, 1, u16::MAX);
    let trust_proxy = v.int("TRUST_PROXY", 1u32, 0, 10);
    let default_db = if live {
        "/data/otp.db"
    } else {
        "./otp-sandbox.db"
    };
    let database_path = PathBuf::from(v.string_or("DATABASE_PATH", default_db));
    let otp_ttl = Duration::from_secs(v.int("OTP_TTL_SECS", 600u64, 1, 86_400));
    let data_retention_days = v.int("DATA_RETENTION_DAYS", 90u32, 1, 3650);
    let log_level = v
        .choice(
            "LOG_LEVEL",
            "info",
            &[
                ("trace", "trace"),
                ("debug", "debug"),
                ("info", "info"),
                ("warn", "warn"),
                ("error", "error"),
            ],
        )
        .to_string();
    let log_format = v.choice(
        "LOG_FORMAT",
        LogFormat::Text,
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    );
    let expiry_sweep_interval =
        Duration::from_millis(v.int("EXPIRY_SWEEP_INTERVAL_MS", 1000u64, 10, 60_000));

    let sip = load_sip(v, live);
    let voice = load_voice(v);
    let sms = load_sms(v, live, &sip.caller_id);
    let channels = load_channels(v, live, sms.enabled);
    let fraud = load_fraud(v);
    let admin = load_admin(v, live, http_port);
    let webhooks = load_webhooks(v, live, &api_secret);
    let cdr = load_cdr(v);

    Config {
        mode,
        api_secret,
        api_secret_generated,
        bind_address,
        http_port,
        trust_proxy,
        database_path,
        otp_ttl,
        data_retention_days,
        log_level,
        log_format,
        expiry_sweep_interval,
        sip,
        voice,
        sms,
        channels,
        fraud,
        admin,
        webhooks,
        cdr,
        warnings: Vec::new(),
        sandbox_records: 1_000,
        sandbox_record_audio: true,
    }
}

/// A random hex secret of `bytes` bytes (sandbox only, where no secret was configured).
fn generated(v: &mut Vars<'_>, name: &str, bytes: usize) -> Secret {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    match ring::rand::SystemRandom::new().fill(&mut buf) {
        Ok(()) => Secret::new(hex::encode(buf)),
        Err(_) => {
            v.error(
                name,
                "is not set and no random value could be generated (system RNG unavailable)",
            );
            Secret::default()
        }
    }
}

fn load_sip(v: &mut Vars<'_>, live: bool) -> SipConfig {
    let host = match v.string("DIDWW_SIP_HOST") {
        Some(host) if split_host_port(&host).is_some() => host,
        Some(host) => {
            v.error(
                "DIDWW_SIP_HOST",
                format!(
                    "{host:?} is not a host name or host:port (for example nyc.us.out.didww.com)"
                ),
            );
            String::new()
        }
        None => {
            if live {
                v.missing(
                    "DIDWW_SIP_HOST",
                    "required in live mode (the DIDWW SIP server, for example nyc.us.out.didww.com)",
                );
            }
            String::new()
        }
    };
    let username = v.string("DIDWW_USERNAME").unwrap_or_else(|| {
        if live {
            v.missing(
                "DIDWW_USERNAME",
                "required in live mode (SIP trunk username)",
            );
        }
        String::new()
    });
    let password = v.secret("DIDWW_PASSWORD", 1, live).unwrap_or_else(|| {
        if live {
            v.missing(
                "DIDWW_PASSWORD",
                "required in live mode (SIP trunk password)",
            );
        }
        Secret::default()
    });

    let primary = read_caller_id(v, "DIDWW_CALLER_ID");
    let alias = read_caller_id(v, "DIDWW_DID_NUMBER");
    let caller_id = match (primary, alias) {
        (Some(primary), Some(alias)) if primary != alias => {
            v.error(
                "DIDWW_DID_NUMBER",
                format!(
                    "{alias} differs from DIDWW_CALLER_ID ({primary}); DIDWW_DID_NUMBER is the old \
                     name of DIDWW_CALLER_ID, set only one"
                ),
            );
            primary
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => {
            if live {
                if !v.has_error("DIDWW_DID_NUMBER") {
                    v.missing(
                        "DIDWW_CALLER_ID",
                        "required in live mode (your DIDWW number in international format, for \
                         example 12125551234; DIDWW_DID_NUMBER is accepted too)",
                    );
                }
                String::new()
            } else {
                SANDBOX_CALLER_ID.to_string()
            }
        }
    };
    let caller_id_us_canada = read_caller_id(v, "DIDWW_CALLER_ID_US_CANADA");

    let public_ip = match v.parsed::<IpAddr>("PUBLIC_IP", "an IP address") {
        Some(ip) if ip.is_unspecified() => {
            v.error(
                "PUBLIC_IP",
                format!("{ip} is not a usable address; give the server's public IP"),
            );
            ip
        }
        Some(ip) => ip,
        None => {
            if live {
                v.missing(
                    "PUBLIC_IP",
                    "required in live mode (the server's public IP address, put in SIP and SDP)",
                );
            }
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    };

    let sip_port = v.int("SIP_PORT", 5060u16, 1, u16::MAX);
    let rtp_port_start = v.int("RTP_PORT_START", 10000u16, 1024, u16::MAX);
    let rtp_port_end = v.int("RTP_PORT_END", 10020u16, 1024, u16::MAX);
    // Relations are checked only between values that parsed; a default standing in for a broken
    // value would produce a second, misleading message.
    let ports_ok = !v.has_error("RTP_PORT_START") && !v.has_error("RTP_PORT_END");
    if ports_ok && rtp_port_start >= rtp_port_end {
        v.error(
            "RTP_PORT_END",
            format!("{rtp_port_end} must be greater than RTP_PORT_START ({rtp_port_start})"),
        );
    } else if ports_ok
        && !v.has_error("SIP_PORT")
        && (rtp_port_start..=rtp_port_end).contains(&sip_port)
    {
        v.error(
            "SIP_PORT",
            format!("{sip_port} lies inside the RTP port range {rtp_port_start}-{rtp_port_end}"),
        );
    }
    let ring_timeout = Duration::from_secs(v.int("CALL_RING_TIMEOUT_SECS", 30u64, 1, 300));
    let max_call_duration = Duration::from_secs(v.int("CALL_MAX_DURATION_SECS", 120u64, 1, 3600));
    let t1 = Duration::from_millis(v.int("SIP_T1_MS", 500u64, 50, 5000));
    let options_interval = Duration::from_secs(v.int("SIP_OPTIONS_INTERVAL_SECS", 30u64, 5, 3600));

    SipConfig {
        host,
        username,
        password,
        caller_id,
        caller_id_us_canada,
        public_ip,
        sip_port,
        rtp_port_start,
        rtp_port_end,
        ring_timeout,
        max_call_duration,
        t1,
        options_interval,
    }
}

fn read_caller_id(v: &mut Vars<'_>, name: &str) -> Option<String> {
    let value = v.string(name)?;
    match normalize_caller_id(&value) {
        Ok(id) => Some(id),
        Err(why) => {
            v.error(name, format!("{value:?} {why}"));
            None
        }
    }
}

/// Caller IDs go into SIP `From` users and SMS `source` fields as bare E.164 digits; operators
/// write them with `+` and spaces, so those are removed and anything else is refused.
fn normalize_caller_id(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    let value = value.strip_prefix('+').unwrap_or(value);
    let digits: String = value.chars().filter(|c| *c != ' ').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err("is not a phone number (digits, with an optional leading + and spaces)");
    }
    if digits.starts_with('0') {
        return Err("must be in international format, country code first (no leading 0)");
    }
    if !(6..=15).contains(&digits.len()) {
        return Err("must have 6 to 15 digits (E.164)");
    }
    Ok(digits)
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when the host is not a valid DNS
/// name or IP address or the port is not 1-65535.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        return Some((host, parse_port(port)?));
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let valid_host = host.parse::<Ipv4Addr>().is_ok()
        || (host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if !valid_host {
        return None;
    }
    Some((host, parse_port(port)?))
}

/// `Some(None)` for no port, `Some(Some(p))` for a valid port, `None` for an invalid one.
fn parse_port(port: Option<&str>) -> Option<Option<u16>> {
    match port {
        None => Some(None),
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => None,
            Ok(p) => Some(Some(p)),
        },
    }
}

fn default_prompt() -> Vec<PromptPart> {
    vec![
        PromptPart::Intro,
        PromptPart::Code,
        PromptPart::Repeating,
        PromptPart::Code,
        PromptPart::Goodbye,
    ]
}

fn load_voice(v: &mut Vars<'_>) -> VoiceConfig {
    let (message_template, prompt) = match v.string("OTP_MESSAGE_TEMPLATE") {
        None => (DEFAULT_VOICE_TEMPLATE.to_string(), default_prompt()),
        Some(template) => match parse_prompt(&template) {
            Ok(prompt) => {
                let normalised = template
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                (normalised, prompt)
            }
            Err(why) => {
                v.error("OTP_MESSAGE_TEMPLATE", why);
                (DEFAULT_VOICE_TEMPLATE.to_string(), default_prompt())
            }
        },
    };
    let speed = v.choice(
        "OTP_VOICE_SPEED",
        VoiceSpeed::Medium,
        &[
            ("slow", VoiceSpeed::Slow),
            ("medium", VoiceSpeed::Medium),
            ("fast", VoiceSpeed::Fast),
        ],
    );
    // The language names a prompt subfolder, so it must not be able to climb out of it.
    let language = match v.string("OTP_VOICE_LANGUAGE") {
        None => "en".to_string(),
        Some(lang)
            if lang.len() <= 16
                && lang.starts_with(|c: char| c.is_ascii_alphabetic())
                && lang
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            lang
        }
        Some(lang) => {
            v.error(
                "OTP_VOICE_LANGUAGE",
                format!("{lang:?} is not a language code (letters, digits, - and _; for example en or pt-BR)"),
            );
            "en".to_string()
        }
    };
    let prompts_dir = v.string("VOICE_PROMPTS_DIR").map(PathBuf::from);
    if let Some(dir) = &prompts_dir {
        if !dir.is_dir() {
            v.error(
                "VOICE_PROMPTS_DIR",
                format!("{:?} is not a directory", dir.display().to_string()),
            );
        }
    }
    VoiceConfig {
        message_template,
        prompt,
        speed,
        language,
        prompts_dir,
    }
}

/// Parses a voice template: clip names and `{code}` separated by spaces or commas.
fn parse_prompt(template: &str) -> Result<Vec<PromptPart>, String> {
    let mut parts = Vec::new();
    let mut unknown = Vec::new();
    for token in template
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        let part = match token.to_ascii_lowercase().as_str() {
            "{code}" => PromptPart::Code,
            "intro" => PromptPart::Intro,
            "repeating" => PromptPart::Repeating,
            "goodbye" => PromptPart::Goodbye,
            d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => {
                PromptPart::Digit(d.as_bytes()[0] - b'0')
            }
            _ => {
                unknown.push(format!("{token:?}"));
                continue;
            }
        };
        parts.push(part);
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown clip {} (a template is a list of intro, repeating, goodbye, 0-9 and {{code}}, \
             for example \"{DEFAULT_VOICE_TEMPLATE}\")",
            unknown.join(", ")
        ));
    }
    if !parts.contains(&PromptPart::Code) {
        return Err("must contain {code}".to_string());
    }
    Ok(parts)
}

fn load_sms(v: &mut Vars<'_>, live: bool, sip_caller_id: &str) -> SmsConfig {
    // Sandbox turns SMS on by default so the whole pipeline runs; an explicit value still wins.
    let enabled = v.bool_opt("SMS_ENABLED").unwrap_or(!live);
    let username = v.string("SMS_USERNAME");
    let password = v.secret("SMS_PASSWORD", 1, live);
    if live && enabled {
        if username.is_none() {
            v.missing(
                "SMS_USERNAME",
                "required when SMS_ENABLED is true (DIDWW SMS API username, not the SIP one)",
            );
        }
        if password.is_none() {
            v.missing(
                "SMS_PASSWORD",
                "required when SMS_ENABLED is true (DIDWW SMS API password, not the SIP one)",
            );
        }
    }
    let api_endpoint = v.string_or("SMS_API_ENDPOINT", DEFAULT_SMS_API_ENDPOINT);
    match url::Url::parse(&api_endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
            if live && url.scheme() == "http" {
                v.warn("SMS_API_ENDPOINT uses plain http: SMS API credentials travel unencrypted");
            }
        }
        _ => v.error(
            "SMS_API_ENDPOINT",
            format!("{api_endpoint:?} is not an http(s) URL"),
        ),
    }
    let message_template = v.string_or("SMS_MESSAGE_TEMPLATE", DEFAULT_SMS_TEMPLATE);
    if !message_template.contains("{code}") {
        v.error("SMS_MESSAGE_TEMPLATE", "must contain {code}");
    }
    let caller_id = read_caller_id(v, "SMS_CALLER_ID").unwrap_or_else(|| sip_caller_id.to_string());
    let delivery_timeout = Duration::from_secs(v.int("SMS_DELIVERY_TIMEOUT_SECS", 60u64, 1, 3600));
    let api_timeout = Duration::from_millis(v.int("SMS_API_TIMEOUT_MS", 10_000u64, 100, 120_000));
    SmsConfig {
        enabled,
        username,
        password,
        api_endpoint,
        message_template,
        caller_id,
        delivery_timeout,
        api_timeout,
    }
}

fn load_channels(v: &mut Vars<'_>, live: bool, sms_enabled: bool) -> ChannelsConfig {
    let mut default = Vec::new();
    let names = match v.string("CHANNELS_DEFAULT") {
        None => vec!["sms".to_string(), "voice".to_string()],
        Some(_) => v.list("CHANNELS_DEFAULT"),
    };
    let mut bad = Vec::new();
    for name in &names {
        match Channel::from_str(&name.to_ascii_lowercase()) {
            Ok(channel) if default.contains(&channel) => {
                v.error("CHANNELS_DEFAULT", format!("{channel} is listed twice"));
            }
            Ok(channel) => default.push(channel),
            Err(()) => bad.push(format!("{name:?}")),
        }
    }
    if !bad.is_empty() {
        v.error(
            "CHANNELS_DEFAULT",
            format!("unknown channel {} (use sms and/or voice)", bad.join(", ")),
        );
    } else if default.is_empty() {
        v.error(
            "CHANNELS_DEFAULT",
            "must name at least one channel (sms, voice)",
        );
    }
    // sms alone with SMS off could never deliver a request that names no channel; sms among
    // others is simply skipped, as the default list does on a voice-only install.
    if live && !sms_enabled && default == [Channel::Sms] && !v.has_error("SMS_ENABLED") {
        v.error(
            "CHANNELS_DEFAULT",
            "is only sms but SMS_ENABLED is false: requests without channels could never be sent",
        );
    }
    if default.is_empty() {
        default = vec![Channel::Sms, Channel::Voice];
    }
    let enable_failover = v.bool("CHANNELS_ENABLE_FAILOVER", true);
    ChannelsConfig {
        default,
        enable_failover,
    }
}

fn load_fraud(v: &mut Vars<'_>) -> FraudConfig {
    let enabled = v.bool("FRAUD_ENABLED", true);
    let mode = v.choice(
        "FRAUD_MODE",
        FraudMode::Enforce,
        &[
            ("enforce", FraudMode::Enforce),
            ("monitor", FraudMode::Monitor),
        ],
    );
    let rate_limit_minute = v.int("FRAUD_RATE_LIMIT_MINUTE", 2u32, 1, 1000);
    let rate_limit_hour = v.int("FRAUD_RATE_LIMIT_HOUR", 5u32, 1, 10_000);
    let subnet_limit_minute = v.int("FRAUD_SUBNET_LIMIT_MINUTE", 10u32, 1, 10_000);
    let subnet_limit_hour = v.int("FRAUD_SUBNET_LIMIT_HOUR", 60u32, 1, 100_000);
    if rate_limit_minute > rate_limit_hour {
        v.warn("FRAUD_RATE_LIMIT_MINUTE is above FRAUD_RATE_LIMIT_HOUR; the hourly limit wins");
    }
    let shadow_ban_threshold = v.int("FRAUD_SHADOW_BAN_THRESHOLD", 50u32, 1, 1000);
    let geo_mismatch_penalty = v.int("FRAUD_GEO_MISMATCH_PENALTY", 20u32, 0, 1000);
    let mut allowed_countries: Vec<String> = Vec::new();
    for code in v.list("FRAUD_ALLOWED_COUNTRIES") {
        let upper = code.to_ascii_uppercase();
        // phonenumber's region list is exactly the set of countries a phone number can belong
        // to, which is what this filter compares against.
        let known = upper.len() == 2 && phonenumber::country::Id::from_str(&upper).is_ok();
        if !known {
            let hint = if upper == "UK" {
                " (the United Kingdom is GB)"
            } else {
                ""
            };
            v.error(
                "FRAUD_ALLOWED_COUNTRIES",
                format!("{code:?} is not an ISO 3166 alpha-2 country code{hint}"),
            );
        } else if !allowed_countries.contains(&upper) {
            allowed_countries.push(upper);
        }
    }
    let mut whitelist_phones = Vec::new();
    let mut whitelist_nets = Vec::new();
    for entry in v.list("FRAUD_WHITELIST") {
        let digits = entry.strip_prefix('+').unwrap_or(&entry);
        if !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
            whitelist_phones.push(format!("+{digits}"));
        } else {
            match entry.parse::<IpNet>() {
                Ok(net) => whitelist_nets.push(net),
                Err(_) => v.error(
                    "FRAUD_WHITELIST",
                    format!(
                        "{entry:?} is neither a phone number (+E164) nor an IP address or CIDR"
                    ),
                ),
            }
        }
    }
    let asn_db_path = PathBuf::from(v.string_or("ASN_DB_PATH", "/data/asn.mmdb"));
    let geoip_db_path = PathBuf::from(v.string_or("GEOIP_DB_PATH", "/data/country.mmdb"));
    FraudConfig {
        whitelist_phones,
        whitelist_nets,
        enabled,
        mode,
        rate_limit_minute,
        rate_limit_hour,
        subnet_limit_minute,
        subnet_limit_hour,
        shadow_ban_threshold,
        geo_mismatch_penalty,
        allowed_countries,
        asn_db_path,
        geoip_db_path,
    }
}

fn load_admin(v: &mut Vars<'_>, live: bool, http_port: u16) -> AdminConfig {
    // Sandbox turns the admin panel on by default (SPEC §1); an explicit value still wins.
    let enabled = v.bool_opt("ADMIN_ENABLED").unwrap_or(!live);
    let username = v.string_or("ADMIN_USERNAME", "admin");
    if username.chars().count() > 64 || username.chars().any(char::is_control) {
        v.error("ADMIN_USERNAME", "must be at most 64 printable characters");
    }
    let mut password = v.secret("ADMIN_PASSWORD", MIN_ADMIN_PASSWORD, live);
    let mut password_generated = false;
    if enabled && password.is_none() {
        if live {
            v.missing(
                "ADMIN_PASSWORD",
                "required when ADMIN_ENABLED is true (at least 8 characters)",
            );
        } else {
            password = Some(generated(v, "ADMIN_PASSWORD", 8));
            password_generated = true;
        }
    }
    // Port 80 needs root outside a container; the sandbox runs on a developer's machine.
    let default_port = if live { 80 } else { 8081 };
    let port = v.int("ADMIN_PORT", default_port, 1, u16::MAX);
    if enabled && port == http_port && !v.has_error("ADMIN_PORT") && !v.has_error("HTTP_PORT") {
        v.error(
            "ADMIN_PORT",
            format!("{port} is also HTTP_PORT; the admin panel needs its own port"),
        );
    }
    let session_secret = v.secret("ADMIN_SESSION_SECRET", MIN_SESSION_SECRET, live);
    let session_ttl = Duration::from_secs(60 * v.int("ADMIN_SESSION_TTL", 480u64, 5, 10_080));
    let cookie_secure = match v.string("ADMIN_COOKIE_SECURE") {
        None => CookieSecure::Auto,
        Some(value) if value.eq_ignore_ascii_case("auto") => CookieSecure::Auto,
        Some(value) => match vars::parse_bool(&value) {
            Some(true) => CookieSecure::Always,
            Some(false) => CookieSecure::Never,
            None => {
                v.error(
                    "ADMIN_COOKIE_SECURE",
                    format!("{value:?} is not one of auto, true, false"),
                );
                CookieSecure::Auto
            }
        },
    };
    let mut cors_origins = Vec::new();
    for origin in v.list("ADMIN_CORS_ORIGINS") {
        match parse_origin(&origin) {
            Ok(o) => {
                if !cors_origins.contains(&o) {
                    cors_origins.push(o);
                }
            }
            Err(why) => v.error("ADMIN_CORS_ORIGINS", format!("{origin:?} {why}")),
        }
    }
    let mut ip_whitelist = Vec::new();
    for entry in v.list("ADMIN_IP_WHITELIST") {
        match entry.parse::<IpNet>() {
            Ok(net) => ip_whitelist.push(net),
            Err(why) => v.error("ADMIN_IP_WHITELIST", format!("{entry:?} {why}")),
        }
    }
    AdminConfig {
        enabled,
        username,
        password,
        password_generated,
        port,
        session_secret,
        session_ttl,
        cookie_secure,
        cors_origins,
        ip_whitelist,
    }
}

/// An allowed CORS origin: scheme, host and optional port, nothing else. The admin API uses
/// cookies, so a wildcard would hand sessions to any site.
fn parse_origin(origin: &str) -> Result<String, &'static str> {
    if origin == "*" {
        return Err("is not allowed: list origins explicitly (the admin API uses credentials)");
    }
    let url = url::Url::parse(origin)
        .map_err(|_| "is not an origin (for example https://admin.example.com)")?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.has_host()
        || !url.username().is_empty()
        || url.password().is_some()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(
            "is not an origin: only scheme://host[:port] (for example https://admin.example.com)",
        );
    }
    Ok(url.origin().ascii_serialization())
}

fn load_webhooks(v: &mut Vars<'_>, live: bool, api_secret: &Secret) -> WebhookConfig {
    let timeout = Duration::from_millis(v.int("WEBHOOK_TIMEOUT_MS", 5000u64, 100, 60_000));
    let max_attempts = v.int("WEBHOOK_MAX_ATTEMPTS", 6u32, 1, 20);
    let signing_secret = v
        .secret("WEBHOOK_SIGNING_SECRET", MIN_SIGNING_SECRET, live)
        .unwrap_or_else(|| api_secret.clone());
    // The sandbox is for trying things on one machine, where the webhook receiver is usually on
    // localhost; live mode keeps the SSRF guard closed unless the operator opens it.
    let allow_private = v.bool("WEBHOOK_ALLOW_PRIVATE", !live);
    if live && allow_private {
        v.warn(
            "WEBHOOK_ALLOW_PRIVATE is true: client webhook URLs may reach private and internal \
             addresses (meant for local development only)",
        );
    }
    let inbound_secret = v.secret("WEBHOOK_INBOUND_SECRET", 16, live);
    if live && inbound_secret.is_none() && !v.has_error("WEBHOOK_INBOUND_SECRET") {
        v.warn(
            "WEBHOOK_INBOUND_SECRET is not set: /webhooks/dlr and /webhooks/cdr accept callbacks \
             from anyone",
        );
    }
    let retry_base = Duration::from_millis(v.int("WEBHOOK_RETRY_BASE_MS", 2000u64, 1, 600_000));
    WebhookConfig {
        timeout,
        max_attempts,
        signing_secret,
        allow_private,
        inbound_secret,
        retry_base,
    }
}

fn load_cdr(v: &mut Vars<'_>) -> CdrConfig {
    let enabled = v.bool("CDR_ENABLED", false);
    let target_trunk_id = match v.string("CDR_TARGET_TRUNK_ID") {
        None => None,
        Some(id) => match uuid::Uuid::parse_str(&id) {
            Ok(uuid) => Some(uuid.hyphenated().to_string()),
            Err(_) => {
                v.error(
                    "CDR_TARGET_TRUNK_ID",
                    format!("{id:?} is not a UUID (the trunk id shown in the DIDWW console)"),
                );
                None
            }
        },
    };
    let learning_interval =
        Duration::from_secs(60 * v.int("CDR_LEARNING_INTERVAL_MINUTES", 60u64, 1, 1440));
    let learning_batch_size = v.int("CDR_LEARNING_BATCH_SIZE", 1000u32, 1, 100_000);
    CdrConfig {
        enabled,
        target_trunk_id,
        learning_interval,
        learning_batch_size,
    }
}

#[cfg(test)]
mod tests;
