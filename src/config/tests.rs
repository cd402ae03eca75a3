//! Unit tests of [`Config::from_vars`]: defaults, the live/sandbox split, error collection and
//! every parsing rule an operator can trip over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The minimum a live deployment needs.
fn live_required() -> Vec<(&'static str, &'static str)> {
    vec![
        ("DIDWW_SIP_HOST", "nyc.us.out.didww.com"),
        ("DIDWW_USERNAME", "trunk-user"),
        ("DIDWW_PASSWORD", "trunk-pass"),
        ("DIDWW_CALLER_ID", "+1 212 555 1234"),
        ("PUBLIC_IP", "203.0.113.10"),
        ("API_SECRET", "0123456789abcdef0123"),
    ]
}

fn live_with(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map = vars(&live_required());
    for (k, val) in extra {
        map.insert(k.to_string(), val.to_string());
    }
    map
}

fn live_ok(extra: &[(&str, &str)]) -> Config {
    match Config::from_vars(&live_with(extra), false) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn live_err(extra: &[(&str, &str)]) -> ConfigErrors {
    Config::from_vars(&live_with(extra), false).expect_err("expected configuration errors")
}

#[test]
fn live_defaults_follow_the_spec() {
    let c = live_ok(&[]);
    assert_eq!(c.mode, Mode::Live);
    assert!(!c.is_sandbox());
    assert!(!c.api_secret_generated);
    assert_eq!(c.bind_address, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!(c.http_port, 8080);
    assert_eq!(c.trust_proxy, 1);
    assert_eq!(c.database_path, PathBuf::from("/data/otp.db"));
    assert_eq!(c.otp_ttl, Duration::from_secs(600));
    assert_eq!(c.data_retention_days, 90);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.expiry_sweep_interval, Duration::from_millis(1000));

    assert_eq!(c.sip.host, "nyc.us.out.didww.com");
    assert_eq!(c.sip.host_and_port(), ("nyc.us.out.didww.com", 5060));
    assert_eq!(c.sip.caller_id, "12125551234");
    assert_eq!(c.sip.caller_id_us_canada, None);
    assert_eq!(c.sip.sip_port, 5060);
    assert_eq!((c.sip.rtp_port_start, c.sip.rtp_port_end), (10000, 10020));
    assert_eq!(c.sip.ring_timeout, Duration::from_secs(30));
    assert_eq!(c.sip.max_call_duration, Duration::from_secs(120));

    assert_eq!(
        c.voice.message_template,
        "intro {code} repeating {code} goodbye"
    );
    assert_eq!(c.voice.prompt.len(), 5);
    assert_eq!(c.voice.speed, VoiceSpeed::Medium);
    assert_eq!(c.voice.language, "en");
    assert_eq!(c.voice.prompts_dir, None);

    assert!(!c.sms.enabled);
    assert_eq!(
        c.sms.api_endpoint,
        "https://us.sms-out.didww.com/outbound_messages"
    );
    assert_eq!(c.sms.message_template, "Your verification code is: {code}");
    assert_eq!(c.sms.caller_id, "12125551234");
    assert_eq!(c.sms.delivery_timeout, Duration::from_secs(60));
    assert_eq!(c.sms.api_timeout, Duration::from_millis(10_000));
    assert_eq!(c.sms.connect_timeout(), Duration::from_secs(5));

    assert_eq!(c.channels.default, vec![Channel::Sms, Channel::Voice]);
    assert!(c.channels.enable_failover);

    assert!(c.fraud.enabled);
    assert_eq!(c.fraud.mode, FraudMode::Enforce);
    assert_eq!((c.fraud.rate_limit_minute, c.fraud.rate_limit_hour), (2, 5));
    assert_eq!(
        (c.fraud.subnet_limit_minute, c.fraud.subnet_limit_hour),
        (10, 60)
    );
    assert_eq!(c.fraud.shadow_ban_threshold, 50);
    assert_eq!(c.fraud.geo_mismatch_penalty, 20);
    assert!(c.fraud.allowed_countries.is_empty());
    assert_eq!(c.fraud.asn_db_path, PathBuf::from("/data/asn.mmdb"));
    assert_eq!(c.fraud.geoip_db_path, PathBuf::from("/data/country.mmdb"));

    assert!(!c.admin.enabled);
    assert_eq!(c.admin.username, "admin");
    assert_eq!(c.admin.port, 80);
    assert!(c.admin.session_secret.is_none());
    assert_eq!(c.admin.session_ttl, Duration::from_secs(480 * 60));
    assert_eq!(c.admin.cookie_secure, CookieSecure::Auto);
    assert!(c.admin.cors_origins.is_empty());
    assert!(c.admin.ip_whitelist.is_empty());

    assert_eq!(c.webhooks.timeout, Duration::from_millis(5000));
    assert_eq!(c.webhooks.max_attempts, 6);
    assert_eq!(c.webhooks.signing_secret.expose(), c.api_secret.expose());
    assert!(!c.webhooks.allow_private);
    assert!(c.webhooks.inbound_secret.is_none());
    assert_eq!(c.webhooks.retry_base, Duration::from_millis(2000));

    assert!(!c.cdr.enabled);
    assert_eq!(c.cdr.target_trunk_id, None);
    assert_eq!(c.cdr.learning_interval, Duration::from_secs(3600));
    assert_eq!(c.cdr.learning_batch_size, 1000);
}

#[test]
fn sandbox_needs_nothing() {
    let c = Config::from_vars(&HashMap::new(), true).unwrap();
    assert_eq!(c.mode, Mode::Sandbox);
    assert!(c.api_secret_generated);
    assert_eq!(c.api_secret.expose().len(), 32);
    assert!(c
        .api_secret
        .expose()
        .chars()
        .all(|ch| ch.is_ascii_hexdigit()));
    assert_eq!(c.bind_address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert!(
        c.webhooks.allow_private,
        "sandbox lets webhooks reach localhost"
    );
    assert_eq!(c.database_path, PathBuf::from("./otp-sandbox.db"));
    assert_eq!(c.sip.caller_id, SANDBOX_CALLER_ID);
    assert_eq!(c.sms.caller_id, SANDBOX_CALLER_ID);
    assert_eq!(c.sip.public_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert!(c.sip.host.is_empty());
    assert!(c.sms.enabled);
    assert!(c.sms.username.is_none());
    assert!(c.admin.enabled);
    assert!(c.admin.password_generated);
    assert!(c.admin.password.as_ref().unwrap().expose().len() >= 8);
    assert_ne!(c.admin.port, c.http_port);
    // Generated secrets differ between runs.
    let again = Config::from_vars(&HashMap::new(), true).unwrap();
    assert_ne!(c.api_secret.expose(), again.api_secret.expose());
}

#[test]
fn sandbox_variable_equals_the_flag() {
    let c = Config::from_vars(&vars(&[("SANDBOX", "yes")]), false).unwrap();
    assert!(c.is_sandbox());
    let c = Config::from_vars(&vars(&[("SANDBOX", "false")]), true).unwrap();
    assert!(c.is_sandbox(), "the --sandbox flag wins over SANDBOX=false");
}

#[test]
fn sandbox_keeps_explicit_values() {
    let c = Config::from_vars(
        &vars(&[
            ("API_SECRET", "my-own-sandbox-secret"),
            ("ADMIN_ENABLED", "false"),
            ("SMS_ENABLED", "0"),
            ("DATABASE_PATH", "/tmp/x.db"),
        ]),
        true,
    )
    .unwrap();
    assert!(!c.api_secret_generated);
    assert_eq!(c.api_secret.expose(), "my-own-sandbox-secret");
    assert!(!c.admin.enabled);
    assert!(!c.admin.password_generated);
    assert!(!c.sms.enabled);
    assert_eq!(c.database_path, PathBuf::from("/tmp/x.db"));
}

#[test]
fn live_needs_the_required_set() {
    let errors = Config::from_vars(&HashMap::new(), false).unwrap_err();
    for name in [
        "DIDWW_SIP_HOST",
        "DIDWW_USERNAME",
        "DIDWW_PASSWORD",
        "DIDWW_CALLER_ID",
        "PUBLIC_IP",
        "API_SECRET",
    ] {
        assert!(errors.mentions(name), "{name} missing from:\n{errors}");
    }
    assert_eq!(errors.len(), 6, "{errors}");
    assert!(errors
        .to_string()
        .contains("API_SECRET: must be at least 16 characters (required in live mode)"));
}

#[test]
fn each_required_variable_is_required_on_its_own() {
    for (name, _) in live_required() {
        let mut map = live_with(&[]);
        map.remove(name);
        let errors = Config::from_vars(&map, false).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(errors.mentions(name), "{errors}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let errors = live_err(&[
        ("HTTP_PORT", "abc"),
        ("SMS_ENABLED", "maybe"),
        ("RTP_PORT_START", "80"),
    ]);
    let text = errors.to_string();
    assert_eq!(errors.len(), 3, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines.contains(&"HTTP_PORT: \"abc\" is not a number"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("SMS_ENABLED: \"maybe\"")),
        "{text}"
    );
    assert!(
        lines.contains(&"RTP_PORT_START: 80 is out of range (1024 to 65535)"),
        "{text}"
    );
    // The error type is a std error, for `?` in main.
    let _: &dyn std::error::Error = &errors;
}

#[test]
fn booleans_mean_what_they_say() {
    let c = live_ok(&[
        ("FRAUD_ENABLED", "false"),
        ("CHANNELS_ENABLE_FAILOVER", "No"),
        ("CDR_ENABLED", "1"),
        ("WEBHOOK_ALLOW_PRIVATE", "0"),
    ]);
    assert!(!c.fraud.enabled);
    assert!(!c.channels.enable_failover);
    assert!(c.cdr.enabled);
    assert!(!c.webhooks.allow_private);

    let errors = live_err(&[("FRAUD_ENABLED", "maybe")]);
    assert_eq!(
        errors.to_string(),
        "FRAUD_ENABLED: \"maybe\" is not a boolean (use true/false, 1/0 or yes/no)"
    );
}

#[test]
fn empty_values_are_unset() {
    let c = live_ok(&[
        ("HTTP_PORT", ""),
        ("ADMIN_ENABLED", ""),
        ("LOG_LEVEL", "  "),
    ]);
    assert_eq!(c.http_port, 8080);
    assert!(!c.admin.enabled);
    assert_eq!(c.log_level, "info");
}

#[test]
fn file_variants_are_read_and_trimmed_once() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"secret-from-file-0123\n").unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let mut map = live_with(&[]);
    map.remove("API_SECRET");
    map.insert("API_SECRET_FILE".into(), path.clone());
    let c = Config::from_vars(&map, false).unwrap();
    assert_eq!(c.api_secret.expose(), "secret-from-file-0123");

    // Only one newline is trimmed; a second is part of the value.
    let mut file2 = tempfile::NamedTempFile::new().unwrap();
    file2.write_all(b"8081\r\n").unwrap();
    let mut map2 = live_with(&[]);
    map2.insert(
        "HTTP_PORT_FILE".into(),
        file2.path().to_str().unwrap().into(),
    );
    assert_eq!(Config::from_vars(&map2, false).unwrap().http_port, 8081);
}

#[test]
fn file_variant_conflicts_and_read_errors() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut map = live_with(&[]);
    map.insert(
        "API_SECRET_FILE".into(),
        file.path().to_str().unwrap().into(),
    );
    let errors = Config::from_vars(&map, false).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    assert!(errors
        .to_string()
        .starts_with("API_SECRET: both API_SECRET and API_SECRET_FILE are set"));

    let mut map = live_with(&[]);
    map.remove("DIDWW_PASSWORD");
    map.insert(
        "DIDWW_PASSWORD_FILE".into(),
        "/nonexistent/otp-gateway/secret".into(),
    );
    let errors = Config::from_vars(&map, false).unwrap_err();
    // One message for the cause, not a second "required" for the same variable.
    assert_eq!(errors.len(), 1, "{errors}");
    assert!(errors
        .to_string()
        .starts_with("DIDWW_PASSWORD_FILE: cannot read \"/nonexistent/otp-gateway/secret\""));
}

#[test]
fn secrets_are_redacted_everywhere() {
    let c = live_ok(&[
        ("ADMIN_ENABLED", "true"),
        ("ADMIN_PASSWORD", "admin-pass-XYZZY"),
        ("ADMIN_SESSION_SECRET", "session-secret-XYZZY"),
        ("WEBHOOK_SIGNING_SECRET", "signing-secret-XYZZY"),
        ("WEBHOOK_INBOUND_SECRET", "inbound-secret-XYZZY"),
        ("SMS_ENABLED", "true"),
        ("SMS_USERNAME", "sms-user"),
        ("SMS_PASSWORD", "sms-pass-XYZZY"),
        ("DIDWW_PASSWORD", "trunk-pass-XYZZY"),
        ("API_SECRET", "api-secret-XYZZY-0123"),
    ]);
    let debug = format!("{c:?}");
    let summary = c.summary_lines().join("\n");
    for text in [&debug, &summary] {
        assert!(!text.contains("XYZZY"), "secret leaked:\n{text}");
    }
    assert!(debug.contains("***"));
    assert_eq!(
        c.admin.password.as_ref().unwrap().expose(),
        "admin-pass-XYZZY"
    );

    // Errors about secrets do not echo them either.
    let errors = live_err(&[("API_SECRET", "short-XYZZY")]);
    assert!(!errors.to_string().contains("XYZZY"), "{errors}");
    assert!(errors.mentions("API_SECRET"));
}

#[test]
fn placeholder_secrets_are_refused_in_live_mode_only() {
    let errors = live_err(&[("API_SECRET", "change-me-generate-with-openssl-rand-hex-32")]);
    assert!(errors.mentions("API_SECRET"), "{errors}");
    assert!(errors.to_string().contains("placeholder"));
    let c = Config::from_vars(
        &vars(&[("API_SECRET", "change-me-generate-with-openssl-rand-hex-32")]),
        true,
    )
    .unwrap();
    assert!(!c.api_secret_generated);
}

#[test]
fn did_number_is_an_alias_of_caller_id() {
    let mut map = live_with(&[]);
    map.remove("DIDWW_CALLER_ID");
    map.insert("DIDWW_DID_NUMBER".into(), "+1234567890".into());
    let c = Config::from_vars(&map, false).unwrap();
    assert_eq!(c.sip.caller_id, "1234567890");
    assert_eq!(c.sms.caller_id, "1234567890");

    let c = live_ok(&[("DIDWW_DID_NUMBER", "12125551234")]);
    assert_eq!(c.sip.caller_id, "12125551234");

    let errors = live_err(&[("DIDWW_DID_NUMBER", "+1 646 555 0000")]);
    assert_eq!(errors.len(), 1, "{errors}");
    assert!(errors.mentions("DIDWW_DID_NUMBER"));

    // A broken alias is reported as such, not also as a missing caller ID.
    let mut map = live_with(&[]);
    map.remove("DIDWW_CALLER_ID");
    map.insert("DIDWW_DID_NUMBER".into(), "call-me".into());
    let errors = Config::from_vars(&map, false).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    assert!(errors.mentions("DIDWW_DID_NUMBER"));
}

#[test]
fn caller_ids_are_normalised_to_digits() {
    assert_eq!(
        normalize_caller_id("+44 20 7946 0000").unwrap(),
        "442079460000"
    );
    assert_eq!(normalize_caller_id("12125551234").unwrap(), "12125551234");
    assert!(normalize_caller_id("+1-212-555-1234").is_err());
    assert!(normalize_caller_id("02079460000").is_err());
    assert!(normalize_caller_id("12345").is_err());
    assert!(normalize_caller_id("1234567890123456").is_err());
    assert!(normalize_caller_id("++1234567").is_err());

    let c = live_ok(&[
        ("SMS_CALLER_ID", "+44 7700 900123"),
        ("DIDWW_CALLER_ID_US_CANADA", "+1 415 555 0100"),
    ]);
    assert_eq!(c.sms.caller_id, "447700900123");
    assert_eq!(c.sip.caller_id_us_canada.as_deref(), Some("14155550100"));
    let errors = live_err(&[("SMS_CALLER_ID", "OTP-Gateway")]);
    assert!(errors.mentions("SMS_CALLER_ID"), "{errors}");
}

#[test]
fn sms_in_live_mode_needs_its_own_credentials() {
    let errors = live_err(&[("SMS_ENABLED", "true")]);
    assert_eq!(errors.len(), 2, "{errors}");
    assert!(errors.mentions("SMS_USERNAME") && errors.mentions("SMS_PASSWORD"));

    let errors = live_err(&[("SMS_API_ENDPOINT", "ftp://sms.example.com/x")]);
    assert!(errors.mentions("SMS_API_ENDPOINT"));
    let errors = live_err(&[("SMS_API_ENDPOINT", "not a url")]);
    assert!(errors.mentions("SMS_API_ENDPOINT"));
    let errors = live_err(&[("SMS_MESSAGE_TEMPLATE", "Your code")]);
    assert!(errors.mentions("SMS_MESSAGE_TEMPLATE"));

    let c = live_ok(&[
        ("SMS_API_TIMEOUT_MS", "2500"),
        ("SMS_DELIVERY_TIMEOUT_SECS", "90"),
    ]);
    assert_eq!(c.sms.api_timeout, Duration::from_millis(2500));
    assert_eq!(c.sms.connect_timeout(), Duration::from_millis(2500));
    assert_eq!(c.sms.delivery_timeout, Duration::from_secs(90));
}

#[test]
fn port_ranges_and_relations() {
    for (extra, var) in [
        (vec![("HTTP_PORT", "0")], "HTTP_PORT"),
        (vec![("HTTP_PORT", "65536")], "HTTP_PORT"),
        (vec![("RTP_PORT_END", "1000")], "RTP_PORT_END"),
        (
            vec![("RTP_PORT_START", "20000"), ("RTP_PORT_END", "20000")],
            "RTP_PORT_END",
        ),
        (vec![("SIP_PORT", "10004")], "SIP_PORT"),
        (vec![("TRUST_PROXY", "11")], "TRUST_PROXY"),
        (vec![("TRUST_PROXY", "true")], "TRUST_PROXY"),
        (vec![("OTP_TTL_SECS", "0")], "OTP_TTL_SECS"),
        (
            vec![("CALL_RING_TIMEOUT_SECS", "0")],
            "CALL_RING_TIMEOUT_SECS",
        ),
        (vec![("WEBHOOK_TIMEOUT_MS", "0")], "WEBHOOK_TIMEOUT_MS"),
        (
            vec![
                ("ADMIN_ENABLED", "true"),
                ("ADMIN_PASSWORD", "12345678"),
                ("ADMIN_PORT", "8080"),
            ],
            "ADMIN_PORT",
        ),
    ] {
        let errors = live_err(&extra);
        assert_eq!(errors.len(), 1, "{extra:?}: {errors}");
        assert!(errors.mentions(var), "{extra:?}: {errors}");
    }
    let c = live_ok(&[
        ("TRUST_PROXY", "0"),
        ("RTP_PORT_START", "20000"),
        ("RTP_PORT_END", "20001"),
    ]);
    assert_eq!(c.trust_proxy, 0);
    assert_eq!((c.sip.rtp_port_start, c.sip.rtp_port_end), (20000, 20001));
}

#[test]
fn sip_host_forms() {
    for (host, expected) in [
        ("sip.example.com", ("sip.example.com", 5060)),
        ("sip.example.com:5080", ("sip.example.com", 5080)),
        ("198.51.100.7:5061", ("198.51.100.7", 5061)),
        ("[2001:db8::7]:5062", ("2001:db8::7", 5062)),
        ("[2001:db8::7]", ("2001:db8::7", 5060)),
    ] {
        let c = live_ok(&[("DIDWW_SIP_HOST", host)]);
        assert_eq!(c.sip.host_and_port(), expected, "{host}");
    }
    for host in [
        "sip://nyc.didww.com",
        "nyc.didww.com:0",
        "nyc.didww.com:99999",
        "2001:db8::7",
        "bad host",
        "-x.com",
    ] {
        let errors = live_err(&[("DIDWW_SIP_HOST", host)]);
        assert!(errors.mentions("DIDWW_SIP_HOST"), "{host}: {errors}");
    }
}

#[test]
fn public_ip_must_be_an_address() {
    assert!(live_err(&[("PUBLIC_IP", "your.server.public.ip")]).mentions("PUBLIC_IP"));
    assert!(live_err(&[("PUBLIC_IP", "0.0.0.0")]).mentions("PUBLIC_IP"));
    let c = live_ok(&[("PUBLIC_IP", "2001:db8::10")]);
    assert_eq!(c.sip.public_ip, "2001:db8::10".parse::<IpAddr>().unwrap());
}

#[test]
fn channels_default() {
    let c = live_ok(&[("CHANNELS_DEFAULT", "Voice, sms")]);
    assert_eq!(c.channels.default, vec![Channel::Voice, Channel::Sms]);
    let c = live_ok(&[("CHANNELS_DEFAULT", "voice")]);
    assert_eq!(c.channels.default, vec![Channel::Voice]);
    for bad in ["sms,sms", "fax", ",", "sms,fax"] {
        let errors = live_err(&[("CHANNELS_DEFAULT", bad)]);
        assert!(errors.mentions("CHANNELS_DEFAULT"), "{bad}: {errors}");
    }
    // sms only, with SMS off, could never deliver anything.
    assert!(live_err(&[("CHANNELS_DEFAULT", "sms")]).mentions("CHANNELS_DEFAULT"));
}

#[test]
fn enumerations() {
    let c = live_ok(&[
        ("FRAUD_MODE", "Monitor"),
        ("OTP_VOICE_SPEED", "fast"),
        ("LOG_LEVEL", "DEBUG"),
        ("LOG_FORMAT", "json"),
        ("ADMIN_COOKIE_SECURE", "false"),
    ]);
    assert_eq!(c.fraud.mode, FraudMode::Monitor);
    assert_eq!(c.voice.speed, VoiceSpeed::Fast);
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.admin.cookie_secure, CookieSecure::Never);
    assert_eq!(
        live_ok(&[("ADMIN_COOKIE_SECURE", "TRUE")])
            .admin
            .cookie_secure,
        CookieSecure::Always
    );

    let errors = live_err(&[
        ("FRAUD_MODE", "block"),
        ("OTP_VOICE_SPEED", "ludicrous"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_FORMAT", "xml"),
        ("ADMIN_COOKIE_SECURE", "sometimes"),
    ]);
    assert_eq!(errors.len(), 5, "{errors}");
    assert!(errors
        .to_string()
        .contains("FRAUD_MODE: \"block\" is not one of enforce, monitor"));
}

#[test]
fn voice_template() {
    let c = live_ok(&[("OTP_MESSAGE_TEMPLATE", "intro, {code},  goodbye")]);
    assert_eq!(c.voice.message_template, "intro {code} goodbye");
    assert_eq!(
        c.voice.prompt,
        vec![PromptPart::Intro, PromptPart::Code, PromptPart::Goodbye]
    );
    let c = live_ok(&[("OTP_MESSAGE_TEMPLATE", "{code} 1 {code}")]);
    assert_eq!(c.voice.prompt[1], PromptPart::Digit(1));
    assert_eq!(PromptPart::Digit(1).clip_name().as_deref(), Some("1"));

    let errors = live_err(&[(
        "OTP_MESSAGE_TEMPLATE",
        "Your verification code is {code}. Repeating. {code}.",
    )]);
    assert!(errors.mentions("OTP_MESSAGE_TEMPLATE"), "{errors}");
    assert!(live_err(&[("OTP_MESSAGE_TEMPLATE", "intro goodbye")]).mentions("OTP_MESSAGE_TEMPLATE"));
    assert!(live_err(&[("OTP_VOICE_LANGUAGE", "../etc")]).mentions("OTP_VOICE_LANGUAGE"));
    assert_eq!(
        live_ok(&[("OTP_VOICE_LANGUAGE", "pt-BR")]).voice.language,
        "pt-BR"
    );

    let dir = tempfile::tempdir().unwrap();
    let c = live_ok(&[("VOICE_PROMPTS_DIR", dir.path().to_str().unwrap())]);
    assert_eq!(c.voice.prompts_dir.as_deref(), Some(dir.path()));
    assert!(
        live_err(&[("VOICE_PROMPTS_DIR", "/nonexistent/prompts")]).mentions("VOICE_PROMPTS_DIR")
    );
}

#[test]
fn fraud_countries_are_iso_codes() {
    let c = live_ok(&[("FRAUD_ALLOWED_COUNTRIES", "us, ca,GB,us")]);
    assert_eq!(c.fraud.allowed_countries, vec!["US", "CA", "GB"]);
    let errors = live_err(&[("FRAUD_ALLOWED_COUNTRIES", "US,UK,USA,ZZ")]);
    assert_eq!(errors.len(), 3, "{errors}");
    assert!(errors.to_string().contains("the United Kingdom is GB"));
}

#[test]
fn admin_in_live_mode() {
    let errors = live_err(&[("ADMIN_ENABLED", "true")]);
    assert_eq!(errors.len(), 1, "{errors}");
    assert!(errors.mentions("ADMIN_PASSWORD"));
    assert!(
        live_err(&[("ADMIN_ENABLED", "true"), ("ADMIN_PASSWORD", "short")])
            .mentions("ADMIN_PASSWORD")
    );
    assert!(live_err(&[("ADMIN_SESSION_SECRET", "too-short")]).mentions("ADMIN_SESSION_SECRET"));

    let c = live_ok(&[
        ("ADMIN_ENABLED", "true"),
        ("ADMIN_PASSWORD", "correct horse"),
        ("ADMIN_USERNAME", "ops"),
        ("ADMIN_SESSION_TTL", "60"),
        (
            "ADMIN_CORS_ORIGINS",
            "http://localhost:5173/, https://admin.example.com",
        ),
    ]);
    assert!(c.admin.enabled && !c.admin.password_generated);
    assert_eq!(c.admin.username, "ops");
    assert_eq!(c.admin.session_ttl, Duration::from_secs(3600));
    assert_eq!(
        c.admin.cors_origins,
        vec!["http://localhost:5173", "https://admin.example.com"]
    );
    for bad in [
        "*",
        "localhost:5173",
        "https://a.example.com/admin",
        "ftp://a.example.com",
    ] {
        assert!(
            live_err(&[("ADMIN_CORS_ORIGINS", bad)]).mentions("ADMIN_CORS_ORIGINS"),
            "{bad}"
        );
    }
}

#[test]
fn admin_ip_whitelist_takes_ips_and_cidrs() {
    let c = live_ok(&[(
        "ADMIN_IP_WHITELIST",
        "203.0.113.5, 10.0.0.0/8,2001:db8::/32 , ::1",
    )]);
    let list: Vec<String> = c.admin.ip_whitelist.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        list,
        vec!["203.0.113.5/32", "10.0.0.0/8", "2001:db8::/32", "::1/128"]
    );
    let allowed = |ip: &str| c.admin.ip_allowed(ip.parse().unwrap());
    assert!(allowed("10.20.30.40"));
    assert!(allowed("203.0.113.5"));
    assert!(allowed("::ffff:10.1.1.1"));
    assert!(allowed("2001:db8:1::9"));
    assert!(!allowed("203.0.113.6"));
    assert!(!allowed("192.168.0.1"));

    let errors = live_err(&[("ADMIN_IP_WHITELIST", "10.0.0.0/33, office, 10.1.2.3")]);
    assert_eq!(errors.len(), 2, "{errors}");

    let open = live_ok(&[]);
    assert!(open.admin.ip_allowed("198.51.100.1".parse().unwrap()));
}

#[test]
fn webhooks_and_cdr() {
    let c = live_ok(&[
        ("WEBHOOK_SIGNING_SECRET", "signing-secret-0123456"),
        ("WEBHOOK_RETRY_BASE_MS", "1000"),
        ("WEBHOOK_MAX_ATTEMPTS", "3"),
        (
            "CDR_TARGET_TRUNK_ID",
            "A1B2C3D4-0000-4000-8000-00000000000F",
        ),
        ("CDR_LEARNING_INTERVAL_MINUTES", "5"),
    ]);
    assert_eq!(c.webhooks.signing_secret.expose(), "signing-secret-0123456");
    assert_eq!(c.webhooks.max_attempts, 3);
    assert_eq!(c.webhooks.retry_delay(1), Duration::from_secs(1));
    assert_eq!(c.webhooks.retry_delay(2), Duration::from_secs(2));
    assert_eq!(c.webhooks.retry_delay(4), Duration::from_secs(8));
    assert_eq!(c.webhooks.retry_delay(30), WEBHOOK_RETRY_CAP);
    assert_eq!(c.webhooks.retry_delay(1000), WEBHOOK_RETRY_CAP);
    assert_eq!(
        c.cdr.target_trunk_id.as_deref(),
        Some("a1b2c3d4-0000-4000-8000-00000000000f")
    );
    assert_eq!(c.cdr.learning_interval, Duration::from_secs(300));
    assert!(live_err(&[("CDR_TARGET_TRUNK_ID", "trunk-1")]).mentions("CDR_TARGET_TRUNK_ID"));
    assert!(live_err(&[("WEBHOOK_SIGNING_SECRET", "short")]).mentions("WEBHOOK_SIGNING_SECRET"));
}

#[test]
fn warnings_for_unknown_and_risky_settings() {
    let c = live_ok(&[
        ("SMS_ENABLE", "true"),
        ("WEBHOOK_MAX_RETRIES", "3"),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("HOME", "/root"),
        ("API_SECRET_FILE", ""),
    ]);
    let text = c.warnings.join("\n");
    assert!(text.contains("SMS_ENABLE is not a setting"), "{text}");
    assert!(
        text.contains("WEBHOOK_MAX_RETRIES is not a setting"),
        "{text}"
    );
    assert!(text.contains("WEBHOOK_ALLOW_PRIVATE"), "{text}");
    assert!(text.contains("WEBHOOK_INBOUND_SECRET is not set"), "{text}");
    assert!(!text.contains("HOME"), "{text}");
    assert!(!text.contains("API_SECRET_FILE"), "{text}");
}

#[test]
fn known_variables_are_exactly_what_is_read() {
    // Sandbox and live read different subsets in some branches; a full set of values walks every
    // branch that reads a variable.
    let mut map = live_with(&[
        ("SMS_ENABLED", "true"),
        ("ADMIN_ENABLED", "true"),
        ("CHANNELS_DEFAULT", "sms,voice"),
    ]);
    for name in KNOWN_VARIABLES {
        map.entry(name.to_string()).or_default();
    }
    let mut v = Vars::new(&map, Vec::new());
    let _ = build(&mut v, false);
    let mut read = v.looked_up();
    read.sort();
    let mut known: Vec<String> = KNOWN_VARIABLES.iter().map(|s| s.to_string()).collect();
    known.sort();
    assert_eq!(read, known);
}

#[test]
fn for_tests_is_a_fast_sandbox() {
    let c = Config::for_tests(PathBuf::from("/tmp/t.db"));
    assert!(c.is_sandbox());
    assert_eq!(c.api_secret.expose(), "test-secret-0123456789");
    assert!(c.webhooks.allow_private);
    assert_eq!(c.sms.delivery_timeout, Duration::from_secs(2));
    assert_eq!(c.webhooks.retry_base, Duration::from_millis(50));
    assert_eq!(c.expiry_sweep_interval, Duration::from_millis(100));
    assert_eq!(c.database_path, PathBuf::from("/tmp/t.db"));
    assert!(c.admin.password.is_some());
}

#[test]
fn summary_names_mode_and_hides_secrets() {
    let c = Config::from_vars(&HashMap::new(), true).unwrap();
    let lines = c.summary_lines();
    assert!(lines[0].starts_with("mode: sandbox"));
    let text = lines.join("\n");
    assert!(!text.contains(c.api_secret.expose()));
    assert!(!text.contains(c.admin.password.as_ref().unwrap().expose()));
}
