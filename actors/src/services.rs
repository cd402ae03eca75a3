//! What request actors and the dispatcher share: the event sink, the channel actors, the code vault
//! and the delivery settings.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::code_vault::CodeVault;
use crate::events::EventSink;
use crate::provider_index::ProviderIndex;
use crate::sms_actor::SmsActor;
use crate::voice::VoiceChannel;

/// Delivery settings from the configuration.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `CHANNELS_ENABLE_FAILOVER`.
    pub failover: bool,
    /// `SMS_DELIVERY_TIMEOUT_SECS`.
    pub sms_delivery_timeout: Duration,
    /// `OTP_TTL_SECS`.
    pub otp_ttl: Duration,
    /// How often due expiries are looked for.
    pub expiry_sweep_interval: Duration,
    /// How long a callback with an unknown message id waits for in-flight submissions.
    pub callback_patience: Duration,
}

/// Shared services of the request actors.
pub struct RequestServices {
    /// Event path.
    pub sink: EventSink,
    /// SMS channel, when configured.
    pub sms: Option<Addr<SmsActor>>,
    /// Voice channel, when configured.
    pub voice: Option<Arc<VoiceChannel>>,
    /// Live provider ids.
    pub index: Arc<ProviderIndex>,
    /// Code hashing and sealing.
    pub vault: Arc<CodeVault>,
    /// Settings.
    pub settings: DeliverySettings,
    /// Step delays of recent real deliveries, fed by the request actors, drawn by shadow twins.
    pub timings: Arc<crate::shadow::DeliveryTimings>,
}
