//! The audit log: who did what to which object, with what outcome, from
//! where and when. Every mutation and every login attempt is recorded here
//! (by the mutation resolvers, through `graphql::mutation::audited`). Rows never hold argument
//! values: only the action's name, the id of the object (or a login's
//! email), the outcome code and the client's address.

use chrono::Utc;
use playground_entities::audit_events;
use playground_policies::{Action, Kind};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::app::App;
use crate::auth::Principal;
use crate::authz;
use crate::error::ApiResult;
use crate::services::pagination::{Page, PageRequest, into_page};

/// The outcome of an action that succeeded; failures record their error
/// code (`UNAUTHENTICATED`, `FORBIDDEN`, `NOT_FOUND`, `BAD_USER_INPUT`, …).
pub const SUCCESS: &str = "SUCCESS";

/// Longest stored object and email (longer values are cut).
const MAX_TEXT: usize = 254;
/// Longest stored action and outcome (the columns' sizes).
const MAX_ACTION: usize = 64;
const MAX_OUTCOME: usize = 32;

/// One thing to record.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub actor_id: Option<Uuid>,
    pub actor_email: Option<String>,
    /// The mutation's name (`createRun`, `login`, …).
    pub action: String,
    /// The id of the object acted on, or a login's email.
    pub object: Option<String>,
    /// [`SUCCESS`] or an error code.
    pub outcome: String,
    pub client_addr: Option<String>,
}

fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Stores `entry`. Never fails: an error is logged, and the request that
/// caused the entry goes on. Rows go through the audit writer, so a client
/// that hangs up does not lose its entry; the caller waits until it is
/// stored, so an admin sees it at once.
pub async fn record(app: &App, entry: AuditEntry) {
    let row = audit_events::ActiveModel {
        id: Set(Uuid::now_v7()),
        at: Set(Utc::now()),
        actor_id: Set(entry.actor_id),
        actor_email: Set(entry.actor_email.map(|e| cut(&e, MAX_TEXT))),
        action: Set(cut(&entry.action, MAX_ACTION)),
        object: Set(entry.object.map(|o| cut(&o, MAX_TEXT))),
        outcome: Set(cut(&entry.outcome, MAX_OUTCOME)),
        client_addr: Set(entry.client_addr.map(|a| cut(&a, MAX_TEXT))),
    };
    let (stored, done) = oneshot::channel();
    if app.audit.sender.send((row, stored)).is_err() || done.await.is_err() {
        tracing::error!(action = %entry.action, "the audit writer has stopped");
    }
}

/// Writes audit rows for every request at once: all rows waiting go in one
/// INSERT, so auditing a burst of mutations costs one statement on the
/// database's writer, not one per mutation.
pub struct AuditWriter {
    sender: mpsc::UnboundedSender<(audit_events::ActiveModel, oneshot::Sender<()>)>,
}

/// Most rows in one INSERT (8 columns each, well within SQLite's limit on
/// bound values).
const MAX_BATCH: usize = 512;

impl AuditWriter {
    pub fn spawn(db: DatabaseConnection) -> Self {
        let (sender, mut receiver) =
            mpsc::unbounded_channel::<(audit_events::ActiveModel, oneshot::Sender<()>)>();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH
                    && let Ok(next) = receiver.try_recv()
                {
                    batch.push(next);
                }
                let (rows, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let n_rows = rows.len();
                if let Err(error) = audit_events::Entity::insert_many(rows).exec(&db).await {
                    tracing::error!(n_rows, %error, "recording audit events failed");
                }
                for reply in replies {
                    let _ = reply.send(());
                }
            }
        });
        Self { sender }
    }
}

/// What `auditEvents` filters on (all exact matches).
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub object: Option<String>,
}

/// A stored event, as the API shows it.
pub type AuditEvent = audit_events::Model;

/// Audit events, newest first. Admins only.
pub async fn list(
    app: &App,
    principal: &Principal,
    filter: AuditFilter,
    page: PageRequest,
) -> ApiResult<Page<AuditEvent>> {
    authz::require(app, principal, Kind::Audit, Action::List)?;
    let mut query = audit_events::Entity::find();
    if let Some(actor_id) = filter.actor_id {
        query = query.filter(audit_events::Column::ActorId.eq(actor_id));
    }
    if let Some(action) = filter.action {
        query = query.filter(audit_events::Column::Action.eq(action));
    }
    if let Some(object) = filter.object {
        query = query.filter(audit_events::Column::Object.eq(object));
    }
    let total_count = query.clone().count(&app.read).await?;
    if let Some(after) = page.after {
        query = query.filter(audit_events::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(audit_events::Column::Id)
        .limit(page.first + 1)
        .all(&app.read)
        .await?;
    Ok(into_page(rows, page, total_count))
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("abc", 2), "ab");
        assert_eq!(cut("é", 1), "");
        assert_eq!(cut("short", 64), "short");
    }
}
