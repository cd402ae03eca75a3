//! The actor system of otp-gateway (see DESIGN.md): a `Dispatcher` supervising one `OtpRequest` actor
//! per request, the `SmsActor` talking to DIDWW, the `Broadcaster` feeding the admin live view and the
//! `WebhookSender` delivering the persistent outbox to clients. Storage is reached only through the
//! [`store::Store`] port, so this crate depends on neither Diesel nor actix-web.

pub mod clock;
pub mod domain;
pub mod ids;
pub mod status;
pub mod store;
pub mod webhook;

pub use domain::{Channel, EventType, Status};
pub use ids::{ProviderMessageId, RequestId};
