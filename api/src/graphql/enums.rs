//! GraphQL enums, each mirroring a stored enum, with explicit conversions.

use async_graphql::Enum;
use playground_entities as entities;
use playground_policies::Grant;

macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident <=> $entity:path { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl From<$entity> for $name {
            fn from(value: $entity) -> Self {
                match value {
                    $(<$entity>::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $entity {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => <$entity>::$variant),+
                }
            }
        }
    };
}

mirror_enum!(
    /// A user's global role.
    Role <=> entities::Role { Admin, Developer, Viewer }
);
mirror_enum!(
    /// Where an environment runs programs.
    ExecutorKind <=> entities::ExecutorKind { Wasm, Docker, Kubernetes }
);
mirror_enum!(
    /// What a program is written in.
    ProgramRuntime <=> entities::ProgramRuntime { Wasm, Python, Shell }
);
mirror_enum!(
    /// The environment state machine: CREATING → READY → STARTING → RUNNING → STOPPING → STOPPED, or FAILED.
    EnvironmentStatus <=> entities::EnvironmentStatus {
        Creating, Ready, Starting, Running, Stopping, Stopped, Failed
    }
);
mirror_enum!(
    /// The run state machine: QUEUED → STARTING → RUNNING → SUCCEEDED | FAILED | CANCELLED | TIMED_OUT.
    RunStatus <=> entities::RunStatus {
        Queued, Starting, Running, Succeeded, Failed, Cancelled, TimedOut
    }
);
mirror_enum!(
    /// Which stream a log line came from; SYSTEM lines are written by Playground.
    LogStream <=> entities::LogStream { Stdout, Stderr, System }
);

/// A permission on a program or environment: VIEW ⊂ EXECUTE ⊂ EDIT ⊂ ADMIN.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Permission {
    View,
    Execute,
    Edit,
    Admin,
}

impl Permission {
    /// The caller's effective permission; `None` only for objects the caller
    /// cannot see, which are never returned.
    pub fn from_grant(grant: Grant) -> Permission {
        match grant {
            Grant::None | Grant::View => Permission::View,
            Grant::Execute => Permission::Execute,
            Grant::Edit => Permission::Edit,
            Grant::Admin => Permission::Admin,
        }
    }

    pub fn to_grant(self) -> Grant {
        match self {
            Permission::View => Grant::View,
            Permission::Execute => Grant::Execute,
            Permission::Edit => Grant::Edit,
            Permission::Admin => Grant::Admin,
        }
    }
}

impl From<playground_executors::ExecutorKind> for ExecutorKind {
    fn from(kind: playground_executors::ExecutorKind) -> Self {
        match kind {
            playground_executors::ExecutorKind::Wasm => ExecutorKind::Wasm,
            playground_executors::ExecutorKind::Docker => ExecutorKind::Docker,
            playground_executors::ExecutorKind::Kubernetes => ExecutorKind::Kubernetes,
        }
    }
}
