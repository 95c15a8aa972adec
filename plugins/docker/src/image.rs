//! Making sure an environment's image is on the engine: inspect, and pull
//! when it is missing or the pull policy says always, with progress as
//! lines.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use playground_executors::{ExecutorError, LogSink};

use crate::config::PullPolicy;
use crate::engine::{Engine, describe, is_connection_error, is_not_found};

/// Makes `image` present on the engine under `policy`; returns its id.
pub(crate) async fn ensure(
    engine: &Engine,
    docker: &Docker,
    image: &str,
    policy: PullPolicy,
    events: &dyn LogSink,
) -> Result<String, ExecutorError> {
    if policy != PullPolicy::Always {
        if let Some(id) = engine.known_image(image) {
            return Ok(id);
        }
        match image_id(engine, docker, image).await? {
            Some(id) => {
                engine.remember_image(image, &id);
                return Ok(id);
            }
            None if policy == PullPolicy::Never => {
                return Err(ExecutorError::new(format!(
                    "image {image} is not on the Docker engine and config.pullPolicy is NEVER: load or build it there first"
                )));
            }
            None => {}
        }
    }
    pull(engine, docker, image, events).await?;
    image_id(engine, docker, image).await?.ok_or_else(|| {
        ExecutorError::new(format!(
            "image {image} was pulled but the Docker engine does not have it"
        ))
    })
}

/// The id of `image` on the engine, `None` when it has no such image.
pub(crate) async fn image_id(
    engine: &Engine,
    docker: &Docker,
    image: &str,
) -> Result<Option<String>, ExecutorError> {
    match docker.inspect_image(image).await {
        Ok(inspect) => Ok(Some(inspect.id.unwrap_or_else(|| image.to_owned()))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(image_error(engine, image, &e).await),
    }
}

async fn pull(
    engine: &Engine,
    docker: &Docker,
    image: &str,
    events: &dyn LogSink,
) -> Result<(), ExecutorError> {
    events.system(&format!("pulling image {image}"));
    let mut options = CreateImageOptionsBuilder::new().from_image(image);
    // Without a tag the engine would pull every tag of the repository.
    if !has_tag_or_digest(image) {
        options = options.tag("latest");
    }
    let mut progress = docker.create_image(Some(options.build()), None, None);
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                // Byte-level progress would flood the log; states are kept.
                let has_progress = info
                    .progress_detail
                    .as_ref()
                    .is_some_and(|p| p.current.is_some() || p.total.is_some());
                if let (Some(status), false) = (info.status, has_progress) {
                    match info.id {
                        Some(id) if !id.is_empty() => events.system(&format!("{id}: {status}")),
                        _ => events.system(&status),
                    }
                }
            }
            Err(e) => {
                let reason = if is_connection_error(&e) {
                    engine.explain(&e).await.message
                } else {
                    describe(&e)
                };
                return Err(ExecutorError::new(format!(
                    "cannot pull image {image}: {reason}"
                )));
            }
        }
    }
    Ok(())
}

async fn image_error(
    engine: &Engine,
    image: &str,
    error: &bollard::errors::Error,
) -> ExecutorError {
    if is_connection_error(error) {
        return engine.explain(error).await;
    }
    ExecutorError::new(format!("image {image}: {}", describe(error)))
}

/// Whether a reference names a tag (`name:tag`) or digest (`name@sha256:…`);
/// a registry port (`host:5000/name`) is not a tag.
fn has_tag_or_digest(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_registry_ports_are_told_apart() {
        assert!(has_tag_or_digest("python:3.12"));
        assert!(has_tag_or_digest("registry:5000/team/python:3.12"));
        assert!(has_tag_or_digest("python@sha256:abc"));
        assert!(!has_tag_or_digest("python"));
        assert!(!has_tag_or_digest("registry:5000/team/python"));
    }
}
