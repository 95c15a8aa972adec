//! The connection to the Docker Engine: made on first use, with the API
//! version negotiated once and cached, and errors explained in words a
//! person can act on.

use bollard::errors::Error;
use bollard::{ClientVersion, Docker};
use playground_executors::ExecutorError;
use tokio::sync::OnceCell;

/// The oldest Engine API this plugin speaks (Docker 20.10).
pub(crate) const MIN_API: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Where the engine listens when neither the settings nor `DOCKER_HOST`
/// say.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// One engine address and, once reached, its client.
pub(crate) struct Engine {
    host: String,
    client: OnceCell<Docker>,
    /// Images recently seen on the engine (name → id), so a burst of runs
    /// does not ask for the same image each time.
    images: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String)>>,
}

/// How long an image seen on the engine is taken to be still there.
const IMAGE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl Engine {
    /// Resolves the address (`host`, else `DOCKER_HOST`, else the local
    /// socket) without connecting.
    pub(crate) fn new(host: Option<String>) -> Self {
        let host = host
            .filter(|h| !h.trim().is_empty())
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_owned());
        Self {
            host,
            client: OnceCell::new(),
            images: Default::default(),
        }
    }

    /// The id of an image seen on the engine within the last few seconds.
    pub(crate) fn known_image(&self, image: &str) -> Option<String> {
        let images = self.images.lock().expect("images lock");
        images
            .get(image)
            .filter(|(at, _)| at.elapsed() < IMAGE_TTL)
            .map(|(_, id)| id.clone())
    }

    pub(crate) fn remember_image(&self, image: &str, id: &str) {
        let mut images = self.images.lock().expect("images lock");
        images.retain(|_, (at, _)| at.elapsed() < IMAGE_TTL);
        images.insert(image.to_owned(), (std::time::Instant::now(), id.to_owned()));
    }

    /// Forgets an image the engine turned out not to have.
    pub(crate) fn forget_image(&self, image: &str) {
        self.images.lock().expect("images lock").remove(image);
    }

    /// The engine's client, connecting and negotiating the API version on
    /// first use. A failure is not cached: the next call tries again.
    pub(crate) async fn client(&self) -> Result<&Docker, ExecutorError> {
        self.client
            .get_or_try_init(|| async {
                let docker = connect(&self.host).map_err(|e| self.explain_without_probe(&e))?;
                let docker = match docker.negotiate_version().await {
                    Ok(docker) => docker,
                    Err(e) => return Err(self.explain(&e).await),
                };
                let version = docker.client_version();
                if version < MIN_API {
                    return Err(ExecutorError::new(format!(
                        "the Docker engine at {} is too old: it speaks API {version}, Playground needs API {MIN_API} or newer (Docker 20.10+)",
                        self.host
                    )));
                }
                Ok(docker)
            })
            .await
    }

    /// An error from the engine as a person should read it: what is wrong
    /// with the connection when it is one, else the engine's own message.
    pub(crate) async fn explain(&self, error: &Error) -> ExecutorError {
        if is_connection_error(error)
            && let Some(path) = self.socket_path()
            && let Some(reason) = diagnose_socket(path).await
        {
            return ExecutorError::unavailable(reason);
        }
        self.explain_without_probe(error)
    }

    fn explain_without_probe(&self, error: &Error) -> ExecutorError {
        if let Error::SocketNotFoundError(path) = error {
            return ExecutorError::unavailable(no_socket(path));
        }
        if is_connection_error(error) {
            return ExecutorError::unavailable(format!(
                "cannot reach the Docker engine at {}: {}",
                self.host,
                describe(error)
            ));
        }
        ExecutorError::new(describe(error))
    }

    fn socket_path(&self) -> Option<&str> {
        self.host.strip_prefix("unix://")
    }
}

fn connect(host: &str) -> Result<Docker, Error> {
    if host.starts_with("unix://") || host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_host(host)
    } else {
        Err(Error::UnsupportedURISchemeError {
            uri: host.to_owned(),
        })
    }
}

/// Whether `error` is about reaching the engine rather than an answer
/// from it.
pub(crate) fn is_connection_error(error: &Error) -> bool {
    matches!(
        error,
        Error::HyperLegacyError { .. }
            | Error::HyperResponseError { .. }
            | Error::IOError { .. }
            | Error::SocketNotFoundError(_)
            | Error::RequestTimeoutError
    )
}

/// Whether `error` is the engine answering 404.
pub(crate) fn is_not_found(error: &Error) -> bool {
    matches!(
        error,
        Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The engine's message alone, or the error with its causes.
pub(crate) fn describe(error: &Error) -> String {
    match error {
        Error::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        Error::DockerStreamError { error } => error.trim().to_owned(),
        Error::UnsupportedURISchemeError { uri } => format!(
            "{uri} is not a Docker engine address: use unix:///path/to/docker.sock or tcp://host:port"
        ),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            text
        }
    }
}

fn no_socket(path: &str) -> String {
    format!(
        "no Docker engine socket at {path}: is dockerd running? Set DOCKER_HOST to the engine's address"
    )
}

/// Why a Unix socket cannot be used, if it cannot.
async fn diagnose_socket(path: &str) -> Option<String> {
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => None,
        Err(e) => Some(socket_problem(path, &e)),
    }
}

/// A failed connection to the engine's socket in words a person can act on.
fn socket_problem(path: &str, error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => no_socket(path),
        ErrorKind::PermissionDenied => format!(
            "permission denied on {path}: run Playground as a user that may use the Docker socket (e.g. in the docker group), or set DOCKER_HOST to an engine it may use"
        ),
        ErrorKind::ConnectionRefused => format!(
            "nothing answers on {path}: is dockerd running? Set DOCKER_HOST to the engine's address"
        ),
        _ => format!("cannot connect to the Docker engine socket {path}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;

    #[test]
    fn socket_problems_say_what_to_do() {
        let path = "/run/docker.sock";
        let problem = |kind| socket_problem(path, &Error::from(kind));
        assert_eq!(
            problem(ErrorKind::NotFound),
            "no Docker engine socket at /run/docker.sock: is dockerd running? Set DOCKER_HOST to the engine's address"
        );
        assert!(
            problem(ErrorKind::PermissionDenied)
                .starts_with("permission denied on /run/docker.sock")
        );
        assert!(problem(ErrorKind::ConnectionRefused).contains("dockerd running"));
        assert!(problem(ErrorKind::TimedOut).contains(path));
    }

    #[test]
    fn the_address_comes_from_settings_then_docker_host() {
        let engine = Engine::new(Some("tcp://engine:2375".to_owned()));
        assert_eq!(engine.host, "tcp://engine:2375");
        assert_eq!(engine.socket_path(), None);
        let engine = Engine::new(Some("unix:///x/docker.sock".to_owned()));
        assert_eq!(engine.socket_path(), Some("/x/docker.sock"));
    }
}
