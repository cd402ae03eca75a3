// @generated automatically by Diesel CLI.

diesel::table! {
    otp_events (id) {
        id -> BigInt,
        request_id -> Text,
        channel -> Text,
        event_type -> Text,
        metadata -> Text,
        internal -> Text,
        status_after -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    otp_requests (id) {
        id -> Text,
        phone -> Text,
        code_hash -> Text,
        code_sealed -> Nullable<Binary>,
        status -> Text,
        channel -> Nullable<Text>,
        channel_index -> Nullable<Integer>,
        channel_status -> Nullable<Text>,
        channels_requested -> Text,
        channel_plan -> Text,
        session_id -> Nullable<Text>,
        webhook_url -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        max_cost_micros -> Nullable<BigInt>,
        provider_id -> Nullable<Text>,
        accepted_at -> Nullable<BigInt>,
        sms_cost_micros -> Nullable<BigInt>,
        sms_parts -> Nullable<Integer>,
        created_at -> BigInt,
        updated_at -> BigInt,
        expires_at -> BigInt,
        sip_call_id -> Nullable<Text>,
        fraud_verdict -> Nullable<Text>,
        fraud_score -> Nullable<Integer>,
        fraud_enforced -> Nullable<Bool>,
        fraud_details -> Nullable<Text>,
        fraud_savings_micros -> Nullable<BigInt>,
        shadow_banned -> Bool,
    }
}

diesel::table! {
    fraud_refusals (id) {
        id -> BigInt,
        phone -> Text,
        ip -> Nullable<Text>,
        verdict -> Text,
        score -> Integer,
        enforced -> Bool,
        details -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    asn_blocklist (asn) {
        asn -> BigInt,
        org -> Text,
        category -> Text,
        source -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    irsf_prefixes (prefix) {
        prefix -> Text,
        note -> Text,
        source -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    fraud_whitelist (entry) {
        entry -> Text,
        kind -> Text,
        note -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    fraud_state (id) {
        id -> Integer,
        snapshot -> Text,
        saved_at -> BigInt,
    }
}

diesel::table! {
    meta (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    provider_callbacks (id) {
        id -> BigInt,
        provider_id -> Text,
        kind -> Text,
        status -> Text,
        request_id -> Nullable<Text>,
        body -> Text,
        received_at -> BigInt,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> BigInt,
        outbox_id -> BigInt,
        request_id -> Text,
        attempt -> Integer,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
        outcome -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    webhook_outbox (id) {
        id -> BigInt,
        request_id -> Text,
        event_id -> BigInt,
        webhook_id -> Text,
        url -> Text,
        event -> Text,
        body -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(otp_events -> otp_requests (request_id));
diesel::joinable!(webhook_attempts -> webhook_outbox (outbox_id));
diesel::joinable!(webhook_outbox -> otp_requests (request_id));

diesel::allow_tables_to_appear_in_same_query!(
    otp_events,
    otp_requests,
    provider_callbacks,
    webhook_attempts,
    webhook_outbox,
);
