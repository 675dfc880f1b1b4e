//! `rtm-server`: runs the RTM room server, or prints its effective config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use rtm_server::config::{Config, DEMO_PID};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "rtm-server", version, about = "The RTM room server (FPNN)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
    /// TOML config file, overlaid on the embedded default.
    #[arg(long, short, global = true, env = "RTM_CONFIG")]
    config: Option<PathBuf>,
    /// Override one key, e.g. `--set server.idle_timeout_secs=120`. Repeatable.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", global = true)]
    overrides: Vec<String>,
    /// The server gate's plain FPNN address (replaces its plain endpoints).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Log filter, e.g. `info` or `rtm_server=debug`; `RUST_LOG` wins if set.
    #[arg(long, global = true, default_value = "info", env = "RTM_LOG_LEVEL")]
    log_level: String,
    /// Start even if a log file is damaged in the middle, cutting it at the
    /// damage (same as `--set storage.repair=true`).
    #[arg(long, global = true)]
    repair: bool,
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "RTM_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the server (the default).
    Run,
    /// Print the effective configuration as TOML and exit.
    PrintConfig,
    /// Write a key pair for FPNN `*key` encryption: DIR/server-key.bin (the
    /// raw private key, for gates.<gate>.ecdh.key_path) and
    /// DIR/server-public.pem (for client builds).
    Keygen {
        /// secp256k1, secp256r1, secp224r1 or secp192r1.
        #[arg(long, default_value = "secp256k1")]
        curve: String,
        /// The directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Replace existing key files (clients built with the old public key stop working).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Commands::Keygen { curve, out, force }) = &cli.command {
        return keygen(curve, out, *force);
    }
    let mut overrides = cli.overrides.clone();
    if cli.repair {
        overrides.push("storage.repair=true".into());
    }
    let mut config = match Config::load(cli.config.as_deref(), std::env::vars(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rtm-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = cli.listen {
        config.gates.server.set_plain_addr(listen);
    }
    match cli.command.unwrap_or(Commands::Run) {
        Commands::PrintConfig => {
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Commands::Keygen { .. } => unreachable!("handled before the config is loaded"),
        Commands::Run => {
            init_logging(&cli.log_level, cli.log_format);
            serve(config)
        }
    }
}

fn keygen(curve: &str, out: &std::path::Path, force: bool) -> ExitCode {
    let curve = match curve.parse() {
        Ok(curve) => curve,
        Err(e) => {
            eprintln!("rtm-server keygen: {e}");
            return ExitCode::from(2);
        }
    };
    match rtm_server::write_key_pair(curve, out, force) {
        Ok((private, public)) => {
            println!("private key ({curve}, raw): {}", private.display());
            println!("public key (PEM, for client builds): {}", public.display());
            println!(
                "serve it with: --set gates.client.ecdh.key_path={} --set gates.client.ecdh.curve={curve}",
                private.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rtm-server keygen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // stderr, as the README says: stdout stays free for `print-config`.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(config: Config) -> ExitCode {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        runtime.worker_threads(config.server.worker_threads);
    }
    if config.server.fair_interval > 0 {
        runtime.global_queue_interval(config.server.fair_interval);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtm-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Validated: the server gate has at least one endpoint.
        let first = config.gates.server.listeners[0];
        let listener = match rtm_server::bind(first.addr) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(listen = %first.addr, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        if config.has_demo_project() {
            let secret = config.projects.iter().find(|p| p.pid == DEMO_PID).map_or("", |p| p.secret.as_str());
            tracing::warn!(
                pid = DEMO_PID,
                secret,
                "the demo project is configured: its secret is public, for local use only; \
                 configure your own projects before exposing this server"
            );
        }
        // The first endpoint as bound: with port 0 the log says which port.
        let bound = listener.local_addr().unwrap_or(first.addr);
        for (i, endpoint) in config.gates.server.listeners.iter().enumerate() {
            let addr = if i == 0 { bound } else { endpoint.addr };
            let kind = if endpoint.tls { "FPNN over TLS" } else { "FPNN" };
            tracing::info!(%addr, gate = "server", projects = config.projects.len(), "rtm-server listening ({kind})");
        }
        for endpoint in &config.gates.client.listeners {
            let (addr, kind) = (endpoint.addr, if endpoint.tls { "FPNN over TLS" } else { "FPNN" });
            tracing::info!(%addr, gate = "client", "listening ({kind})");
        }
        for endpoint in &config.gates.client.websocket_listeners {
            let scheme = if endpoint.tls { "wss" } else { "ws" };
            tracing::info!(
                gate = "client",
                "listening (FPNN over WebSocket) at {scheme}://{}/service/websocket",
                endpoint.addr
            );
        }
        match config.storage.dir() {
            Some(dir) => tracing::info!(data_dir = %dir.display(), fsync = ?config.storage.fsync, "durable storage"),
            None => tracing::warn!("storage.data_dir is empty: state is in memory only and is lost on restart"),
        }
        if config.uses_tls() {
            tracing::info!(cert = %config.tls.cert_path, "TLS certificate");
        }
        if let Ok(Some(metrics)) = config.metrics.addr() {
            tracing::info!("metrics at http://{metrics}/metrics, health at /healthz and /readyz");
        }
        match rtm_server::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(rtm_server::ServerError::Config(e)) => {
                tracing::error!("{e}");
                eprintln!("rtm-server: {e}");
                ExitCode::from(2)
            }
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                eprintln!("rtm-server: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
