//! Playground's Casbin model and default policy (the files beside this
//! crate), and the [`Authorizer`] that answers one question: may a caller
//! with this role and this grant on an object do this action to it?
//!
//! The policy is small and fixed; per-object grants are not Casbin rules but
//! rows in the grants table, looked up by the caller with one indexed query
//! and passed in as the request's `grant`. So the cost of a decision does not
//! grow with the number of objects or shares.

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};

/// The model file, compiled into the binary.
pub const MODEL: &str = include_str!("../model.conf");
/// The default policy file, compiled into the binary.
pub const POLICY: &str = include_str!("../policy.csv");

/// A caller's global role, as the policy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Developer,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }
}

/// A caller's permission on one object. Ordered: `None < View < Execute <
/// Edit < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    None,
    View,
    Execute,
    Edit,
    Admin,
}

impl Grant {
    pub const ALL: [Grant; 5] = [
        Grant::None,
        Grant::View,
        Grant::Execute,
        Grant::Edit,
        Grant::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Grant::None => "none",
            Grant::View => "view",
            Grant::Execute => "execute",
            Grant::Edit => "edit",
            Grant::Admin => "admin",
        }
    }
}

/// The kinds of objects the policy speaks of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Program,
    Environment,
    Run,
    User,
    Token,
    Credential,
    Executor,
    Audit,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Program,
        Kind::Environment,
        Kind::Run,
        Kind::User,
        Kind::Token,
        Kind::Credential,
        Kind::Executor,
        Kind::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Program => "program",
            Kind::Environment => "environment",
            Kind::Run => "run",
            Kind::User => "user",
            Kind::Token => "token",
            Kind::Credential => "credential",
            Kind::Executor => "executor",
            Kind::Audit => "audit",
        }
    }
}

/// The actions the policy speaks of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    View,
    Execute,
    Edit,
    Delete,
    Share,
    Cancel,
    Retry,
    Use,
    Revoke,
    List,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Create,
        Action::View,
        Action::Execute,
        Action::Edit,
        Action::Delete,
        Action::Share,
        Action::Cancel,
        Action::Retry,
        Action::Use,
        Action::Revoke,
        Action::List,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::View => "view",
            Action::Execute => "execute",
            Action::Edit => "edit",
            Action::Delete => "delete",
            Action::Share => "share",
            Action::Cancel => "cancel",
            Action::Retry => "retry",
            Action::Use => "use",
            Action::Revoke => "revoke",
            Action::List => "list",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the authorization model or policy is invalid: {0}")]
    Invalid(#[from] casbin::Error),
}

/// The loaded model and policy. Cheap to share behind an `Arc`; decisions
/// take `&self`.
pub struct Authorizer {
    enforcer: Enforcer,
    /// Casbin's answer for every (role, kind, action, grant), computed when
    /// the policy is loaded: the policy is fixed, so a decision is a lookup.
    decisions: std::collections::HashMap<(Role, Kind, Action, Grant), bool>,
}

impl Authorizer {
    /// Loads the model and policy compiled into the binary.
    pub async fn load_default() -> Result<Self, PolicyError> {
        Self::load(MODEL, POLICY).await
    }

    /// Loads a model and policy given as text (for tests and custom
    /// policies).
    pub async fn load(model: &str, policy: &str) -> Result<Self, PolicyError> {
        let model = DefaultModel::from_str(model).await?;
        let adapter = StringAdapter::new(policy.to_owned());
        let enforcer = Enforcer::new(model, adapter).await?;
        let mut decisions = std::collections::HashMap::new();
        for role in Role::ALL {
            for kind in Kind::ALL {
                for action in Action::ALL {
                    for grant in Grant::ALL {
                        let allowed = Self::enforce(&enforcer, role, kind, action, grant);
                        decisions.insert((role, kind, action, grant), allowed);
                    }
                }
            }
        }
        Ok(Self {
            enforcer,
            decisions,
        })
    }

    fn enforce(enforcer: &Enforcer, role: Role, kind: Kind, action: Action, grant: Grant) -> bool {
        enforcer
            .enforce((
                role.as_str(),
                kind.as_str(),
                action.as_str(),
                grant.as_str(),
            ))
            .unwrap_or(false)
    }

    /// Asks Casbin itself, bypassing the table (for checking the table).
    pub fn enforce_now(&self, role: Role, kind: Kind, action: Action, grant: Grant) -> bool {
        Self::enforce(&self.enforcer, role, kind, action, grant)
    }

    /// Whether `role`, holding `grant` on the object, may do `action` to an
    /// object of `kind`. An evaluation error counts as a denial.
    pub fn allows(&self, role: Role, kind: Kind, action: Action, grant: Grant) -> bool {
        match self.decisions.get(&(role, kind, action, grant)) {
            Some(allowed) => *allowed,
            None => Self::enforce(&self.enforcer, role, kind, action, grant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_decision_table_is_what_casbin_answers() {
        let authorizer = Authorizer::load_default().await.unwrap();
        let mut n_allowed = 0;
        for role in Role::ALL {
            for kind in Kind::ALL {
                for action in Action::ALL {
                    for grant in Grant::ALL {
                        let allowed = authorizer.allows(role, kind, action, grant);
                        assert_eq!(
                            allowed,
                            authorizer.enforce_now(role, kind, action, grant),
                            "{role:?} {kind:?} {action:?} {grant:?}"
                        );
                        n_allowed += usize::from(allowed);
                    }
                }
            }
        }
        assert!(n_allowed > 0 && n_allowed < 3 * 8 * 11 * 5);
    }

    #[tokio::test]
    async fn admin_may_do_everything_without_a_grant() {
        let authorizer = Authorizer::load_default().await.unwrap();
        assert!(authorizer.allows(Role::Admin, Kind::Program, Action::Delete, Grant::None));
        assert!(authorizer.allows(Role::Admin, Kind::User, Action::Create, Grant::None));
        assert!(authorizer.allows(Role::Admin, Kind::Audit, Action::List, Grant::None));
    }

    #[tokio::test]
    async fn grants_form_a_ladder() {
        let authorizer = Authorizer::load_default().await.unwrap();
        let dev = Role::Developer;
        let cases = [
            (Action::View, Grant::None, false),
            (Action::View, Grant::View, true),
            (Action::View, Grant::Admin, true),
            (Action::Execute, Grant::View, false),
            (Action::Execute, Grant::Execute, true),
            (Action::Execute, Grant::Edit, true),
            (Action::Edit, Grant::Execute, false),
            (Action::Edit, Grant::Edit, true),
            (Action::Delete, Grant::Edit, false),
            (Action::Delete, Grant::Admin, true),
            (Action::Share, Grant::Edit, false),
            (Action::Share, Grant::Admin, true),
        ];
        for (action, grant, expected) in cases {
            assert_eq!(
                authorizer.allows(dev, Kind::Program, action, grant),
                expected,
                "developer {action:?} with {grant:?}"
            );
        }
    }

    #[tokio::test]
    async fn viewers_only_read() {
        let authorizer = Authorizer::load_default().await.unwrap();
        let viewer = Role::Viewer;
        assert!(authorizer.allows(viewer, Kind::Program, Action::View, Grant::View));
        assert!(!authorizer.allows(viewer, Kind::Program, Action::Create, Grant::None));
        assert!(!authorizer.allows(viewer, Kind::Program, Action::Edit, Grant::Admin));
        assert!(!authorizer.allows(viewer, Kind::Run, Action::Create, Grant::None));
        assert!(!authorizer.allows(viewer, Kind::User, Action::List, Grant::None));
    }

    #[tokio::test]
    async fn developers_do_not_manage_users() {
        let authorizer = Authorizer::load_default().await.unwrap();
        assert!(!authorizer.allows(Role::Developer, Kind::User, Action::List, Grant::None));
        assert!(!authorizer.allows(Role::Developer, Kind::User, Action::Create, Grant::Admin));
    }
}
