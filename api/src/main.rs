//! The `playground` command: `serve` (the default), `migrate`, `schema` and
//! `user create`.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use playground_api::config::{DatabaseConfig, ServeConfig};
use playground_api::{db, graphql, server, services};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "playground",
    version,
    about = "Playground: register programs, run them in WASM, Docker or Kubernetes, watch them live over GraphQL",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default command).
    Serve(Box<ServeConfig>),
    /// Apply database migrations and exit.
    Migrate(DatabaseConfig),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from the first line of stdin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, ignore_case = true)]
        role: CliRole,
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "lower")]
enum CliRole {
    Admin,
    Developer,
    Viewer,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => server::serve(cli.serve).await,
        Some(Command::Serve(config)) => server::serve(*config).await,
        Some(Command::Migrate(database)) => {
            let db = db::connect(&database).await?;
            db::migrate(&db).await?;
            println!("migrations applied to {}", db::redact(&database.url()));
            Ok(())
        }
        Some(Command::Schema) => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Some(Command::User(UserCommand::Create {
            email,
            role,
            display_name,
            database,
        })) => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let db = db::connect(&database).await?;
            db::migrate(&db).await?;
            let role = match role {
                CliRole::Admin => playground_entities::Role::Admin,
                CliRole::Developer => playground_entities::Role::Developer,
                CliRole::Viewer => playground_entities::Role::Viewer,
            };
            let user = services::users::insert_user(&db, &email, password, display_name, role)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            println!("{}", user.id);
            Ok(())
        }
    }
}

/// Libraries that log request bodies at debug level and below: container
/// and Job specs carry credential values, so they never log more than this,
/// whatever `RUST_LOG` says.
const QUIET_LIBRARIES: [&str; 4] = [
    "bollard=info",
    "kube_client=info",
    "hyper=info",
    "hyper_util=info",
];

fn init_tracing() {
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    for directive in QUIET_LIBRARIES {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("PLAYGROUND_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
