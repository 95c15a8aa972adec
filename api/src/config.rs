//! Server settings: every one a command-line flag and an environment
//! variable, with a default that works with no configuration at all.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Settings of `playground serve` (and of the commands that open the
/// database).
#[derive(Args, Clone, Debug)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Address to listen on.
    #[arg(long, env = "PLAYGROUND_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub hardening: Hardening,

    #[command(flatten)]
    pub scheduler: SchedulerConfig,

    #[command(flatten)]
    pub wasm: WasmSettings,

    #[command(flatten)]
    pub docker: DockerSettings,

    #[command(flatten)]
    pub kubernetes: KubernetesSettings,
}

/// Settings of the Kubernetes executor.
#[derive(Args, Clone, Debug)]
pub struct KubernetesSettings {
    /// The kubeconfig of the cluster KUBERNETES environments run on.
    /// Default: `KUBECONFIG`, else `~/.kube/config`, else the pod's service
    /// account when the server runs in the cluster.
    #[arg(long, env = "PLAYGROUND_KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// The kubeconfig context to use. Default: its current context.
    #[arg(long, env = "PLAYGROUND_KUBE_CONTEXT")]
    pub kube_context: Option<String>,
}

/// Settings of the Docker executor.
#[derive(Args, Clone, Debug)]
pub struct DockerSettings {
    /// The Docker Engine to run DOCKER environments on
    /// (`unix:///var/run/docker.sock`, `tcp://host:2375`); the engine must
    /// run on this machine, since program files are bind-mounted from the
    /// data directory. Default: the local socket.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
}

/// How runs are scheduled.
#[derive(Args, Clone, Debug)]
pub struct SchedulerConfig {
    /// Most WASM runs executing at once on this server.
    #[arg(long, env = "PLAYGROUND_WASM_CONCURRENCY", default_value_t = 64)]
    pub wasm_concurrency: usize,

    /// Most Docker runs executing at once on this server.
    #[arg(long, env = "PLAYGROUND_DOCKER_CONCURRENCY", default_value_t = 8)]
    pub docker_concurrency: usize,

    /// Most Kubernetes runs executing at once from this server.
    #[arg(long, env = "PLAYGROUND_KUBERNETES_CONCURRENCY", default_value_t = 32)]
    pub kubernetes_concurrency: usize,

    /// How long a run's lease lasts without a heartbeat; a run whose server
    /// stopped is recovered by another (or the restarted) server after it.
    #[arg(long, env = "PLAYGROUND_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,

    /// On SIGTERM, how long running runs may go on before they are cancelled.
    #[arg(long, env = "PLAYGROUND_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,

    /// How long a cancelled run may take to stop before it is killed.
    #[arg(long, env = "PLAYGROUND_CANCEL_GRACE_SECONDS", default_value_t = 5)]
    pub cancel_grace_seconds: u64,
}

/// Settings of the WASM executor.
#[derive(Args, Clone, Debug)]
pub struct WasmSettings {
    /// A CPython build for WASI (python.wasm) for PYTHON programs on WASM
    /// environments; an environment's `config.pythonWasm` overrides it.
    #[arg(long, env = "PLAYGROUND_PYTHON_WASM")]
    pub python_wasm: Option<std::path::PathBuf>,
}

/// Where the data lives.
#[derive(Args, Clone, Debug)]
pub struct DatabaseConfig {
    /// Directory for the SQLite database, the blob store and generated
    /// secrets.
    #[arg(long, env = "PLAYGROUND_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL (`sqlite://…` or `postgres://…`); default: a SQLite file
    /// in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

impl DatabaseConfig {
    /// The database URL to connect to.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("playground.db").display()
            ),
        }
    }
}

/// Authentication settings.
#[derive(Args, Clone, Debug)]
pub struct AuthConfig {
    /// Secret for signing session tokens (HS256). Default: generated once
    /// into `<data-dir>/jwt-secret` (mode 0600).
    #[arg(long, env = "PLAYGROUND_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of a session token, in seconds.
    #[arg(long, env = "PLAYGROUND_JWT_EXPIRY_SECONDS", default_value_t = 12 * 3600)]
    pub jwt_expiry_seconds: u64,

    /// Key that encrypts credentials at rest (any string; its SHA-256 is
    /// the AES-256 key). Default: generated once into
    /// `<data-dir>/secret-key` (mode 0600).
    #[arg(long, env = "PLAYGROUND_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Email of the admin created on first start (with
    /// PLAYGROUND_ADMIN_PASSWORD); default `admin@localhost` with a random
    /// password printed once.
    #[arg(long, env = "PLAYGROUND_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of the admin created on first start.
    #[arg(long, env = "PLAYGROUND_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
}

/// Limits on requests, programs and environment resources.
#[derive(Args, Clone, Debug)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PLAYGROUND_MAX_BODY_BYTES", default_value_t = 96 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Deepest GraphQL query accepted.
    #[arg(long, env = "PLAYGROUND_MAX_QUERY_DEPTH", default_value_t = 20)]
    pub max_query_depth: usize,

    /// Highest GraphQL query complexity accepted.
    #[arg(
        long,
        env = "PLAYGROUND_MAX_QUERY_COMPLEXITY",
        default_value_t = 10_000
    )]
    pub max_query_complexity: usize,

    /// Most files in one program.
    #[arg(long, env = "PLAYGROUND_MAX_FILES", default_value_t = 1000)]
    pub max_files: usize,

    /// Largest total size of one program's files, in bytes.
    #[arg(long, env = "PLAYGROUND_MAX_PROGRAM_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_program_bytes: u64,

    /// Largest `memoryMb` an environment may ask for.
    #[arg(long, env = "PLAYGROUND_MAX_MEMORY_MB", default_value_t = 4096)]
    pub max_memory_mb: i32,

    /// Largest `cpuMillis` an environment may ask for.
    #[arg(long, env = "PLAYGROUND_MAX_CPU_MILLIS", default_value_t = 8000)]
    pub max_cpu_millis: i32,

    /// Largest `timeoutSeconds` an environment may ask for.
    #[arg(long, env = "PLAYGROUND_MAX_TIMEOUT_SECONDS", default_value_t = 86_400)]
    pub max_timeout_seconds: i32,

    /// Largest `maxLogBytes` an environment may ask for.
    #[arg(long, env = "PLAYGROUND_MAX_LOG_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_log_bytes: i32,

    /// Largest `pids` an environment may ask for.
    #[arg(long, env = "PLAYGROUND_MAX_PIDS", default_value_t = 4096)]
    pub max_pids: i32,
}

/// Abuse limits: login attempts, query shape, WebSocket traffic and CORS.
#[derive(Args, Clone, Debug)]
pub struct Hardening {
    /// Failed logins for one email within the login window before further
    /// attempts for it are refused (RATE_LIMITED); a success resets it.
    #[arg(
        long,
        env = "PLAYGROUND_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        default_value_t = 5
    )]
    pub login_max_failures_per_account: u32,

    /// Failed logins from one client address within the login window before
    /// further attempts from it are refused (RATE_LIMITED).
    #[arg(
        long,
        env = "PLAYGROUND_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 20
    )]
    pub login_max_failures_per_address: u32,

    /// The window failed logins are counted in, in seconds.
    #[arg(long, env = "PLAYGROUND_LOGIN_WINDOW_SECONDS", default_value_t = 900)]
    pub login_window_seconds: u64,

    /// Most aliases in one GraphQL request (its operations and fragments).
    #[arg(long, env = "PLAYGROUND_MAX_QUERY_ALIASES", default_value_t = 100)]
    pub max_query_aliases: usize,

    /// Longest GraphQL query text accepted, in bytes (variables, such as
    /// program files, do not count).
    #[arg(long, env = "PLAYGROUND_MAX_QUERY_BYTES", default_value_t = 256 * 1024)]
    pub max_query_bytes: usize,

    /// Largest WebSocket message (and frame) accepted, in bytes.
    #[arg(long, env = "PLAYGROUND_MAX_WS_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_ws_message_bytes: usize,

    /// Most subscriptions one user may have open at once, across all of
    /// their connections.
    #[arg(
        long,
        env = "PLAYGROUND_MAX_SUBSCRIPTIONS_PER_USER",
        default_value_t = 100
    )]
    pub max_subscriptions_per_user: usize,

    /// Origins allowed to call the GraphQL endpoints from a browser
    /// (comma-separated, e.g. `https://app.example.com`; `*` for any).
    /// Default: none, and no CORS headers are sent.
    #[arg(long, env = "PLAYGROUND_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

/// Resource values an environment gets when it does not name them.
pub mod resource_defaults {
    pub const MEMORY_MB: i32 = 256;
    pub const CPU_MILLIS: i32 = 1000;
    pub const TIMEOUT_SECONDS: i32 = 60;
    pub const MAX_LOG_BYTES: i32 = 10 * 1024 * 1024;
    pub const PIDS: i32 = 128;
}
