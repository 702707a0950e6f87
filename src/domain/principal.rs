//! Who acts: a token's name and its role.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Reader,
    Editor,
    Auditor,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "reader" => Role::Reader,
            "editor" => Role::Editor,
            "auditor" => Role::Auditor,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Editor => "editor",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Record and change claims and stories.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Editor | Role::Admin)
    }

    /// Erase personal values (API.md, "Erasure").
    pub fn can_erase(self) -> bool {
        self == Role::Admin
    }

    /// Audit trail, raw events, integrity.
    pub fn can_audit(self) -> bool {
        matches!(self, Role::Auditor | Role::Admin)
    }
}

/// The acting principal: the token's name is the `actor` of what it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

/// Token names: what audits show, so short, printable and unambiguous.
pub fn valid_token_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}
