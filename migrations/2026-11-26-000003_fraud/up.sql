-- The fraud engine (SPEC §8). Every accepted request carries its decision (verdict, score, the
-- rules that fired with their points and inputs, whether it was enforced, and the money a ban
-- saved); refused dispatches (429 rate_limited, 422 country_not_allowed) have no request row, so
-- their decisions go to fraud_refusals. Lists the admin will edit live in their own tables; the
-- engine's in-memory state (counters, reputations, breakers) is snapshotted to fraud_state.
ALTER TABLE otp_requests ADD COLUMN fraud_verdict TEXT;
ALTER TABLE otp_requests ADD COLUMN fraud_score INTEGER;
ALTER TABLE otp_requests ADD COLUMN fraud_enforced INTEGER;
ALTER TABLE otp_requests ADD COLUMN fraud_details TEXT;
ALTER TABLE otp_requests ADD COLUMN fraud_savings_micros BIGINT;
ALTER TABLE otp_requests ADD COLUMN shadow_banned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_otp_requests_shadow ON otp_requests(created_at) WHERE shadow_banned = 1;

CREATE TABLE fraud_refusals (
    id INTEGER PRIMARY KEY NOT NULL,
    phone TEXT NOT NULL,
    ip TEXT,
    verdict TEXT NOT NULL,
    score INTEGER NOT NULL,
    enforced INTEGER NOT NULL,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idx_fraud_refusals_created ON fraud_refusals(created_at);

CREATE TABLE asn_blocklist (
    asn BIGINT PRIMARY KEY NOT NULL,
    org TEXT NOT NULL,
    category TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE irsf_prefixes (
    prefix TEXT PRIMARY KEY NOT NULL,
    note TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE fraud_whitelist (
    entry TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('phone', 'ip')),
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row: the engine's last snapshot (JSON).
CREATE TABLE fraud_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    snapshot TEXT NOT NULL,
    saved_at BIGINT NOT NULL
);

-- Small key/value facts, e.g. which seed version the lists got (so an operator who empties a list
-- does not see it refilled at the next start).
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
