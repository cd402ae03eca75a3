//! The status machine of SPEC §5, as pure functions so the store, the per-request actor and the tests
//! all apply the same rules.
//!
//! Delivery statuses only move forward: pending → sending → sent → delivered. `failed` is set only when
//! no channel remains, and a later `delivered` (a late DLR) still wins over it because it is the truth
//! the user saw. Feedback (`verified`, `rejected`) and expiry sit above delivery: `rejected` can still
//! become `verified`, nothing leaves `verified`, and `expired` never hides a verification.

use crate::domain::{EventType, Status};

/// The status a channel event asks for, or `None` when it must not touch the status.
///
/// `final_attempt` says that no channel remains after this one (failover exhausted or disabled): only
/// then does a channel failure fail the request. `otp_played` is the `hangup` flag of SPEC §7.
pub fn proposed_status(event: EventType, otp_played: bool, final_attempt: bool) -> Option<Status> {
    match event {
        EventType::Sending | EventType::Calling => Some(Status::Sending),
        EventType::Sent | EventType::Ringing | EventType::Answered | EventType::Playing => {
            Some(Status::Sent)
        }
        EventType::Delivered | EventType::Completed => Some(Status::Delivered),
        EventType::Hangup if otp_played => Some(Status::Delivered),
        EventType::Hangup
        | EventType::Failed
        | EventType::Undelivered
        | EventType::NoAnswer
        | EventType::Busy => final_attempt.then_some(Status::Failed),
        EventType::Verified => Some(Status::Verified),
        EventType::Rejected => Some(Status::Rejected),
        EventType::Expired => Some(Status::Expired),
    }
}

/// Rank of the delivery-phase statuses; `None` for feedback and expiry.
fn delivery_rank(status: Status) -> Option<u8> {
    match status {
        Status::Pending => Some(0),
        Status::Sending => Some(1),
        Status::Sent => Some(2),
        Status::Failed => Some(3),
        Status::Delivered => Some(4),
        Status::Verified | Status::Rejected | Status::Expired => None,
    }
}

/// The status after applying `proposed` to `current`, or `None` when it stays as it is.
pub fn merge(current: Status, proposed: Status) -> Option<Status> {
    if current == proposed {
        return None;
    }
    match proposed {
        Status::Verified => Some(Status::Verified),
        Status::Rejected => {
            (current != Status::Verified && current != Status::Expired).then_some(Status::Rejected)
        }
        Status::Expired => matches!(
            current,
            Status::Pending | Status::Sending | Status::Sent | Status::Delivered | Status::Rejected
        )
        .then_some(Status::Expired),
        delivery => match (delivery_rank(current), delivery_rank(delivery)) {
            (Some(now), Some(new)) if new > now => Some(delivery),
            _ => None,
        },
    }
}

/// True when the request can no longer send anything, so its sealed code can be wiped.
pub fn sending_finished(status: Status) -> bool {
    !matches!(status, Status::Pending | Status::Sending | Status::Sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_moves_only_forward() {
        assert_eq!(
            merge(Status::Pending, Status::Sending),
            Some(Status::Sending)
        );
        assert_eq!(merge(Status::Sending, Status::Sent), Some(Status::Sent));
        assert_eq!(
            merge(Status::Sent, Status::Delivered),
            Some(Status::Delivered)
        );
        assert_eq!(merge(Status::Delivered, Status::Sent), None);
        assert_eq!(merge(Status::Sent, Status::Sending), None);
        assert_eq!(merge(Status::Delivered, Status::Failed), None);
    }

    #[test]
    fn late_delivery_beats_failure() {
        assert_eq!(
            merge(Status::Failed, Status::Delivered),
            Some(Status::Delivered)
        );
        assert_eq!(merge(Status::Failed, Status::Sent), None);
    }

    #[test]
    fn channel_failure_fails_request_only_on_final_attempt() {
        assert_eq!(proposed_status(EventType::Failed, false, false), None);
        assert_eq!(
            proposed_status(EventType::Undelivered, false, true),
            Some(Status::Failed)
        );
        assert_eq!(
            proposed_status(EventType::Hangup, true, false),
            Some(Status::Delivered)
        );
        assert_eq!(
            proposed_status(EventType::Hangup, false, true),
            Some(Status::Failed)
        );
    }

    /// Every event that ends a channel attempt without reaching the user.
    const CHANNEL_FAILURES: [EventType; 4] = [
        EventType::Failed,
        EventType::Undelivered,
        EventType::NoAnswer,
        EventType::Busy,
    ];

    #[test]
    fn a_channel_failure_with_a_channel_left_never_fails_the_request() {
        for event in CHANNEL_FAILURES {
            assert_eq!(proposed_status(event, false, false), None, "{event}");
            assert_eq!(proposed_status(event, true, false), None, "{event}");
            assert_eq!(
                proposed_status(event, false, true),
                Some(Status::Failed),
                "{event}"
            );
        }
        // A hang-up before the code was played is a failure like the others.
        assert_eq!(proposed_status(EventType::Hangup, false, false), None);
    }

    #[test]
    fn progress_events_do_not_depend_on_the_attempt_being_final() {
        let progress = [
            (EventType::Sending, Status::Sending),
            (EventType::Calling, Status::Sending),
            (EventType::Sent, Status::Sent),
            (EventType::Ringing, Status::Sent),
            (EventType::Answered, Status::Sent),
            (EventType::Playing, Status::Sent),
            (EventType::Delivered, Status::Delivered),
            (EventType::Completed, Status::Delivered),
            (EventType::Verified, Status::Verified),
            (EventType::Rejected, Status::Rejected),
            (EventType::Expired, Status::Expired),
        ];
        for (event, status) in progress {
            for final_attempt in [false, true] {
                assert_eq!(
                    proposed_status(event, false, final_attempt),
                    Some(status),
                    "{event} final={final_attempt}"
                );
            }
        }
    }

    /// Folds channel events `(event, final_attempt)` through the status machine from `pending`,
    /// returning every status along the way.
    fn run(events: &[(EventType, bool)]) -> Vec<Status> {
        let mut status = Status::Pending;
        let mut path = Vec::new();
        for &(event, final_attempt) in events {
            if let Some(proposed) = proposed_status(event, false, final_attempt) {
                status = merge(status, proposed).unwrap_or(status);
            }
            path.push(status);
        }
        path
    }

    #[test]
    fn failover_keeps_the_request_alive_until_the_last_channel() {
        // SMS refused at once, voice delivers: the request never reads `failed`.
        let path = run(&[
            (EventType::Sending, false),
            (EventType::Failed, false),
            (EventType::Calling, true),
            (EventType::Ringing, true),
            (EventType::Answered, true),
            (EventType::Playing, true),
            (EventType::Completed, true),
        ]);
        assert!(!path.contains(&Status::Failed), "{path:?}");
        assert_eq!(
            path[1],
            Status::Sending,
            "stays sending after the SMS failure"
        );
        assert_eq!(path.last(), Some(&Status::Delivered));

        // SMS handed to the carrier, then undelivered; voice is not answered: failed at the end only.
        let path = run(&[
            (EventType::Sending, false),
            (EventType::Sent, false),
            (EventType::Undelivered, false),
            (EventType::Calling, true),
            (EventType::NoAnswer, true),
        ]);
        assert_eq!(
            path,
            [
                Status::Sending,
                Status::Sent,
                Status::Sent,
                Status::Sent,
                Status::Failed
            ]
        );

        // Every channel fails: only the last failure fails the request.
        let path = run(&[
            (EventType::Sending, false),
            (EventType::Failed, false),
            (EventType::Calling, true),
            (EventType::Busy, true),
        ]);
        assert_eq!(path.iter().filter(|s| **s == Status::Failed).count(), 1);
        assert_eq!(path.last(), Some(&Status::Failed));
    }

    #[test]
    fn a_late_failure_of_an_abandoned_attempt_changes_nothing() {
        // Voice delivered after the SMS timed out; the SMS DLR then says expired.
        let path = run(&[
            (EventType::Sending, false),
            (EventType::Sent, false),
            (EventType::Calling, true),
            (EventType::Completed, true),
            (EventType::Undelivered, true),
            (EventType::Failed, true),
        ]);
        assert_eq!(path.last(), Some(&Status::Delivered), "{path:?}");
    }

    #[test]
    fn a_final_failure_fails_only_an_unsettled_delivery() {
        assert_eq!(merge(Status::Pending, Status::Failed), Some(Status::Failed));
        assert_eq!(merge(Status::Sending, Status::Failed), Some(Status::Failed));
        assert_eq!(merge(Status::Sent, Status::Failed), Some(Status::Failed));
        for settled in [
            Status::Failed,
            Status::Delivered,
            Status::Verified,
            Status::Rejected,
            Status::Expired,
        ] {
            assert_eq!(merge(settled, Status::Failed), None, "{settled}");
        }
    }

    #[test]
    fn sending_finishes_once_delivery_is_settled() {
        for status in [Status::Pending, Status::Sending, Status::Sent] {
            assert!(!sending_finished(status), "{status}");
            assert!(!status.delivery_settled(), "{status}");
        }
        for status in [
            Status::Delivered,
            Status::Failed,
            Status::Verified,
            Status::Rejected,
            Status::Expired,
        ] {
            assert!(sending_finished(status), "{status}");
        }
    }

    #[test]
    fn feedback_and_expiry() {
        assert_eq!(
            merge(Status::Delivered, Status::Rejected),
            Some(Status::Rejected)
        );
        assert_eq!(
            merge(Status::Rejected, Status::Verified),
            Some(Status::Verified)
        );
        assert_eq!(merge(Status::Verified, Status::Rejected), None);
        assert_eq!(merge(Status::Verified, Status::Expired), None);
        assert_eq!(merge(Status::Failed, Status::Expired), None);
        assert_eq!(merge(Status::Sent, Status::Expired), Some(Status::Expired));
        assert_eq!(merge(Status::Expired, Status::Delivered), None);
        assert_eq!(
            merge(Status::Expired, Status::Verified),
            Some(Status::Verified)
        );
        assert_eq!(merge(Status::Verified, Status::Delivered), None);
    }
}
