//! The vocabulary of SPEC §5: channels, request statuses and channel events, and how an event maps to
//! a status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A delivery channel. The order of a request's channel list is its failover order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// SMS through the DIDWW SMS OUT API.
    Sms,
    /// A voice call over the DIDWW SIP trunk.
    Voice,
}

impl Channel {
    /// The wire name (`sms`, `voice`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "sms" => Ok(Channel::Sms),
            "voice" => Ok(Channel::Voice),
            _ => Err(()),
        }
    }
}

/// The high-level status of a request (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted and stored; no channel has started yet.
    Pending,
    /// A channel is handing the OTP to the carrier.
    Sending,
    /// The carrier has the OTP (SMS accepted or handed on, call ringing or answered).
    Sent,
    /// The OTP reached the user (DLR delivered, prompt played).
    Delivered,
    /// Every requested channel failed.
    Failed,
    /// The client reported a successful code check.
    Verified,
    /// The client reported a failed code check.
    Rejected,
    /// `OTP_TTL_SECS` passed without verification.
    Expired,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Verified => "verified",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
        }
    }

    /// True once no channel can change the status any more (feedback still can, see [`crate::status`]).
    pub fn delivery_settled(self) -> bool {
        !matches!(self, Status::Pending | Status::Sending | Status::Sent)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "pending" => Status::Pending,
            "sending" => Status::Sending,
            "sent" => Status::Sent,
            "delivered" => Status::Delivered,
            "failed" => Status::Failed,
            "verified" => Status::Verified,
            "rejected" => Status::Rejected,
            "expired" => Status::Expired,
            _ => return Err(()),
        })
    }
}

/// A channel event type (the seed's tables), plus the request-level events from feedback and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// SMS being submitted to the API.
    Sending,
    /// SMS accepted by DIDWW or handed to the carrier.
    Sent,
    /// SMS delivered to the handset (DLR).
    Delivered,
    /// SMS or call failed.
    Failed,
    /// SMS not delivered (DLR final state other than delivered).
    Undelivered,
    /// INVITE sent.
    Calling,
    /// 180/183 received.
    Ringing,
    /// 2xx received.
    Answered,
    /// First code packet sent.
    Playing,
    /// Prompt played in full and we hung up.
    Completed,
    /// Remote hang-up.
    Hangup,
    /// Ring timeout or equivalent SIP answer.
    NoAnswer,
    /// 486/600.
    Busy,
    /// Client feedback: the code was right.
    Verified,
    /// Client feedback: the code was wrong.
    Rejected,
    /// The OTP lifetime passed.
    Expired,
}

impl EventType {
    /// The wire name (`no_answer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Sending => "sending",
            EventType::Sent => "sent",
            EventType::Delivered => "delivered",
            EventType::Failed => "failed",
            EventType::Undelivered => "undelivered",
            EventType::Calling => "calling",
            EventType::Ringing => "ringing",
            EventType::Answered => "answered",
            EventType::Playing => "playing",
            EventType::Completed => "completed",
            EventType::Hangup => "hangup",
            EventType::NoAnswer => "no_answer",
            EventType::Busy => "busy",
            EventType::Verified => "verified",
            EventType::Rejected => "rejected",
            EventType::Expired => "expired",
        }
    }

    /// True for the events that end a channel attempt without reaching the user.
    pub fn is_channel_failure(self) -> bool {
        matches!(
            self,
            EventType::Failed | EventType::Undelivered | EventType::NoAnswer | EventType::Busy
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "sending" => EventType::Sending,
            "sent" => EventType::Sent,
            "delivered" => EventType::Delivered,
            "failed" => EventType::Failed,
            "undelivered" => EventType::Undelivered,
            "calling" => EventType::Calling,
            "ringing" => EventType::Ringing,
            "answered" => EventType::Answered,
            "playing" => EventType::Playing,
            "completed" => EventType::Completed,
            "hangup" => EventType::Hangup,
            "no_answer" => EventType::NoAnswer,
            "busy" => EventType::Busy,
            "verified" => EventType::Verified,
            "rejected" => EventType::Rejected,
            "expired" => EventType::Expired,
            _ => return Err(()),
        })
    }
}
