//! The actor system of otp-gateway (see DESIGN.md): a [`dispatcher::Dispatcher`] that asks the
//! [`fraud::actor::FraudActor`] about each dispatch and supervises one [`otp_request::OtpRequest`]
//! actor per request (or its [`shadow::request::ShadowRequest`] twin when banned), the
//! [`sms_actor::SmsActor`] talking to DIDWW's SMS API, one [`voice::call::CallActor`] per call over
//! the [`sip::transport::SipTransport`] with its RTP on the [`rtp::stream::MediaEngine`] thread, the
//! [`broadcaster::Broadcaster`] feeding the admin live view and the
//! [`webhook::sender::WebhookSender`] delivering the persistent outbox to clients. Storage is reached
//! only through the [`store::Store`] port, so this crate depends on neither Diesel nor actix-web.

pub mod broadcaster;
pub mod clock;
pub mod code_vault;
pub mod didww_sms;
pub mod dispatcher;
pub mod domain;
pub mod events;
pub mod fraud;
pub mod ids;
pub mod ipnet;
pub mod otp_request;
pub mod provider_index;
pub mod rtp;
pub mod services;
pub mod shadow;
pub mod sip;
pub mod sms_actor;
pub mod status;
pub mod store;
pub mod voice;
pub mod webhook;
pub mod xorshift;

pub use domain::{Channel, EventType, Status};
pub use ids::{ProviderMessageId, RequestId};
