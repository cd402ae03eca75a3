//! The `otp-gateway` binary: `otp-gateway [--sandbox]` runs the gateway; `otp-gateway healthcheck`
//! probes `/health` (used by the Docker HEALTHCHECK, since the image has no curl).

use std::process::ExitCode;

use otp_gateway::config::Config;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: otp-gateway [--sandbox] | otp-gateway healthcheck");
        return ExitCode::SUCCESS;
    }
    if args.first().map(String::as_str) == Some("healthcheck") {
        return otp_gateway::healthcheck::run();
    }
    let sandbox = args.iter().any(|a| a == "--sandbox");
    let config = match Config::from_env(sandbox) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("otp-gateway: invalid configuration:\n{errors}");
            return ExitCode::from(2);
        }
    };
    otp_gateway::logging::init(&config);
    let system = actix_rt::System::new();
    match system.block_on(otp_gateway::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("otp-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}
