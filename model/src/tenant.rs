//! Tenants: every record carries one from ingest through storage to query, so isolation later
//! needs no migration. The id rules follow Loki's and Mimir's `X-Scope-OrgID` so the same header
//! values work unchanged.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Longest tenant id accepted (the same limit as Mimir and Loki).
pub const MAX_TENANT_LEN: usize = 150;

/// The tenant used when a request names none (single-tenant installs).
pub const DEFAULT_TENANT: &str = "default";

/// A validated tenant id, cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Validates `id` against the characters Loki and Mimir allow: ASCII letters, digits and
    /// `!-_.*'()`, at most [`MAX_TENANT_LEN`] bytes, and not `.` or `..` (it names a directory).
    pub fn new(id: &str) -> Result<Self> {
        let fail = |reason: &str| Error::InvalidTenant { id: id.to_string(), reason: reason.to_string() };
        if id.is_empty() {
            return Err(fail("empty"));
        }
        if id.len() > MAX_TENANT_LEN {
            return Err(fail("longer than 150 bytes"));
        }
        if id == "." || id == ".." {
            return Err(fail("'.' and '..' are not allowed"));
        }
        if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c))) {
            return Err(fail(&format!("character {c:?} is not allowed (use letters, digits and !-_.*'())")));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The default tenant.
    pub fn default_tenant() -> Self {
        Self(Arc::from(DEFAULT_TENANT))
    }

    /// Reads the tenant from an `X-Scope-OrgID` header value, falling back to the default tenant.
    pub fn from_header(value: Option<&str>) -> Result<Self> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::default_tenant()),
            Some(v) => Self::new(v),
        }
    }

    /// The id as text (safe to use as a directory name).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::default_tenant()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loki_style_ids() {
        for id in ["default", "team-a", "a.b_c(1)*'!"] {
            assert_eq!(TenantId::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_path_tricks_and_bad_characters() {
        for id in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(TenantId::new(id).is_err(), "{id:?} should be rejected");
        }
        assert!(TenantId::new(&"x".repeat(151)).is_err());
    }

    #[test]
    fn missing_header_means_default_tenant() {
        assert_eq!(TenantId::from_header(None).unwrap().as_str(), DEFAULT_TENANT);
        assert_eq!(TenantId::from_header(Some(" ")).unwrap().as_str(), DEFAULT_TENANT);
        assert_eq!(TenantId::from_header(Some("acme")).unwrap().as_str(), "acme");
    }
}
