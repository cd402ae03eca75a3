-- Core tables: OTP requests, their channel events, the client webhook outbox and its attempt log.
-- Times are integer milliseconds since the Unix epoch; money is integer micro-dollars.
-- Row ids are plain INTEGER PRIMARY KEYs (no AUTOINCREMENT, which costs a sqlite_sequence write per
-- insert); retention deletes only old rows, so ids still grow monotonically.

CREATE TABLE otp_requests (
    id TEXT PRIMARY KEY NOT NULL,
    phone TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    -- The code sealed under the server key, kept only while a channel may still need it.
    code_sealed BLOB,
    status TEXT NOT NULL DEFAULT 'pending',
    channel TEXT,
    channel_index INTEGER,
    channel_status TEXT,
    channels_requested TEXT NOT NULL,
    channel_plan TEXT NOT NULL,
    session_id TEXT,
    webhook_url TEXT,
    client_ip TEXT,
    max_cost_micros BIGINT,
    provider_id TEXT,
    accepted_at BIGINT,
    sms_cost_micros BIGINT,
    sms_parts INTEGER,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- Not UNIQUE on purpose: the writer commits many writes per transaction, and one constraint
-- violation (a carrier reusing a message id) must not abort everybody else's writes.
CREATE INDEX idx_otp_requests_provider_id ON otp_requests(provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX idx_otp_requests_status_expires ON otp_requests(status, expires_at);
CREATE INDEX idx_otp_requests_status_created ON otp_requests(status, created_at);
CREATE INDEX idx_otp_requests_phone_created ON otp_requests(phone, created_at);
CREATE INDEX idx_otp_requests_created ON otp_requests(created_at);

CREATE TABLE otp_events (
    id INTEGER PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL REFERENCES otp_requests(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- Client-visible metadata (JSON object).
    metadata TEXT NOT NULL DEFAULT '{}',
    -- Operator-only details (JSON object): carrier errors, provider ids. Never sent to clients.
    internal TEXT NOT NULL DEFAULT '{}',
    status_after TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idx_otp_events_request ON otp_events(request_id, id);
CREATE INDEX idx_otp_events_created ON otp_events(created_at);

CREATE TABLE webhook_outbox (
    id INTEGER PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL REFERENCES otp_requests(id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL,
    webhook_id TEXT NOT NULL,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    -- pending, delivered, failed (attempts exhausted), blocked (SSRF guard)
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX idx_webhook_outbox_pending ON webhook_outbox(state, id);
CREATE INDEX idx_webhook_outbox_request ON webhook_outbox(request_id, id);

CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY NOT NULL,
    outbox_id BIGINT NOT NULL REFERENCES webhook_outbox(id) ON DELETE CASCADE,
    request_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idx_webhook_attempts_outbox ON webhook_attempts(outbox_id);
CREATE INDEX idx_webhook_attempts_request ON webhook_attempts(request_id, id);

-- Inbound DIDWW callbacks as received, for audit and idempotency.
CREATE TABLE provider_callbacks (
    id INTEGER PRIMARY KEY NOT NULL,
    provider_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    request_id TEXT,
    body TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX idx_provider_callbacks_dedup ON provider_callbacks(provider_id, kind, status);
