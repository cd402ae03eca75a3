-- The SIP Call-ID of a request's voice call, for matching DIDWW CDRs (which carry it) to requests.
-- The latest call wins when a request calls more than once (a call re-placed after a restart);
-- every call's id is also kept in the metadata of its `calling` event.
ALTER TABLE otp_requests ADD COLUMN sip_call_id TEXT;
CREATE INDEX idx_otp_requests_sip_call_id ON otp_requests(sip_call_id) WHERE sip_call_id IS NOT NULL;
