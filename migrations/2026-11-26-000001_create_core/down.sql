DROP TABLE provider_callbacks;
DROP TABLE webhook_attempts;
DROP TABLE webhook_outbox;
DROP TABLE otp_events;
DROP TABLE otp_requests;
