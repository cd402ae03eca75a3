DROP INDEX idx_otp_requests_sip_call_id;
ALTER TABLE otp_requests DROP COLUMN sip_call_id;
